// Draws every chart of the page with uPlot: an element with data-chart="<id of a JSON script>" whose JSON is
// {"labels": [...], "data": [[x...], [y...], ...]} (x in Unix seconds). Redrawn after htmx swaps a part.
(function () {
  "use strict";
  var palette = ["#4c7be8", "#e8704c", "#2f9e6e", "#b05fd6", "#d6a21f", "#3bb0c9", "#d6457a", "#7a8699"];

  function draw(el) {
    var source = document.getElementById(el.dataset.chart);
    if (!source || typeof uPlot === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    el.innerHTML = "";
    if (!spec.data[0].length) { el.textContent = "No data yet."; return; }
    var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    var axis = { stroke: dark ? "#9aa3b2" : "#5b6474", grid: { stroke: dark ? "#2c3347" : "#e6e9ef" } };
    var kind = el.dataset.kind || "lines";
    var series = [{}].concat(spec.labels.map(function (label, i) {
      var s = { label: label, stroke: palette[i % palette.length], width: 2, spanGaps: kind !== "points" };
      if (kind === "bars") { s.fill = palette[i % palette.length] + "88"; s.paths = uPlot.paths.bars({ size: [0.8, 40] }); }
      if (kind === "points") { s.paths = function () { return null; }; s.points = { show: true, size: 6 }; }
      return s;
    }));
    new uPlot({ width: Math.max(el.clientWidth, 300), height: 240, series: series, axes: [axis, axis],
                scales: { x: { time: true }, y: kind === "points" ? { range: [0, 1] } : kind === "bars"
                  ? { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } : {} } },
               spec.data, el);
  }

  function drawAll(root) { (root || document).querySelectorAll("[data-chart]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  document.addEventListener("htmx:afterSettle", function (e) { drawAll(e.target); });
  if (window.matchMedia) {  // light or dark: the axes' colours follow the system's setting
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", function () { drawAll(document); });
  }
})();
