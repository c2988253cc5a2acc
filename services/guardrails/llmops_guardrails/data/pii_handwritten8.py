# ruff: noqa: E501  (a data file: one frame per line reads best)
"""Frames for a labelled set of names and places in varied contexts (issue 17, item 1; branch `pii8`).

All written for this project, without looking at the test split of presidio-research's synthetic PII set (nor
its errors): 184 frames in 18 genres (news, chat, support tickets, résumés, e-mails, fiction, reviews, meeting
notes, lists, speaker transcripts, lower-case chat, social posts, forms, travel, academic, sports, hard
negatives with capitalised words and no person or place, label lines and chat roles), many with a name and no cue before it ("the {S}
novel", "{S} scored twice"), lists of names, speaker labels without quotes, lone surnames and first names.
The set shares no template with the data set's dev or test split (its frames are new text), so it is a
held-out check that the dev split, on which the rules were written, cannot give, and more varied training
text for the tagger.

Slots (`SLOTS`): {P} a first name and surname, {F} a first name, {S} a surname, {T} a town of GeoNames
(`towns.txt`), {K} a large city and {C} a country of the gazetteer (`places.md`), {O} a company (a surname and
a company word: ORGANIZATION, not PII: a prediction there is a false positive), {A} a street address
(STREET_ADDRESS: not scored, as in the data set). A slot may carry a digit ({P2}, {S3}) for a second value.
Names come from Faker's person providers of the locales in `LOCALES` (so the engine's name lists know most of
them: the figures on this set are, like the data set's, an upper bound for rarer real names). A frame starting
with "lc:" is lower-cased whole (lower-case chat); one filled sample in ten of the others is too, as the data
set does with some of its samples.

`samples()` fills every frame `per_frame` times with `random.Random(seed)` over sorted lists (deterministic
whatever the string hashing); `batch_of(frame)` deals whole frames to 5 batches (template-grouped folds).
"""

from __future__ import annotations

import hashlib
import importlib
import random
from functools import cache
from pathlib import Path

FRAMES: list[str] = [
    # --- news ----------------------------------------------------------------------------------------------
    "{S} scored twice in the second half as the visitors from {T} held on to win.",
    "The {S} administration has not commented on the report.",
    "Floods closed the main road between {T} and {T2} on Tuesday.",
    "{P}, 54, was named chief executive of {O} after a month-long search.",
    "Police in {T} are asking anyone who saw the accident to call them.",
    "Former minister {P} will stand for mayor of {K} next spring.",
    "Residents of {T} voted against the new wind farm, {S} told reporters.",
    "The festival returns to {K} this summer with headline sets from {P} and {P2}.",
    "{C} and {C2} signed a trade agreement late on Friday.",
    "A spokesperson for {O} declined to say whether {S} would stay on.",
    # --- chat ----------------------------------------------------------------------------------------------
    "did you see what {F} posted?? lol",
    "omw, {F} is driving, be there in 10",
    "{F} says hi btw",
    "Anyone up for drinks tonight? {F} and {F2} are in.",
    "tell {F} I'm sorry about yesterday",
    "Just landed in {K}! {F}, where are you?",
    "haha {F} that's exactly what {F2} said",
    "Ok so {S} from accounting just replied-all to the whole company",
    "Can't believe {F} moved to {T} without telling anyone",
    "brb, {F}'s calling",
    # --- lower-case chat -----------------------------------------------------------------------------------
    "lc:hey is {F} still coming to the party in {T}?",
    "lc:i think {P} knows the landlord",
    "lc:ask {F} for the wifi password",
    "lc:we drove from {K} to {T} in like four hours",
    "lc:{F} and {F2} broke up again",
    "lc:my cousin {F} lives near {T} now",
    "lc:ok {F} i'll send it tonight",
    "lc:met {P} at the gym, super nice",
    "lc:flight to {K} got cancelled ugh",
    "lc:does anyone have {F}'s number",
    # --- support tickets -----------------------------------------------------------------------------------
    "Ticket #{N}: customer {P} cannot log in since the update.",
    "Assigned to {F}. Escalated by {P2} on Monday.",
    "Customer reports that deliveries to {T} are always two days late.",
    "Issue resolved by {S}; customer in {C} confirmed.",
    "Hi team, {P} from {O} is still waiting for a refund.",
    "Caller: {P}. Region: {T}, {C}. Problem: router keeps rebooting.",
    "Per {F}'s note, the replacement ships from our {K} warehouse.",
    "Closing this ticket; {F} will follow up with the customer directly.",
    "Reopened: {P} says the charger from {O} still does not work.",
    "The parcel for {P} is stuck at the depot in {T}.",
    # --- résumés -------------------------------------------------------------------------------------------
    "{P}\nSenior Data Engineer\n{T}, {C}",
    "{P} | Product Designer | {K}",
    "Curriculum vitae of {P}, born in {T}.",
    "References available on request: {P} ({O}), {P2} ({O2}).",
    "2016-2020: Analyst at {O}, {K}. Reported to {P}.",
    "{P}\n{A}\n{T}",
    "Languages: English, German. Based in {T}; willing to relocate to {C}.",
    "Supervisor: Dr. {S}, University of {K}",
    "Education: BSc Physics, {K}; thesis under {P}.",
    "Profile: {F} is a nurse with ten years of experience in {C}.",
    # --- e-mails -------------------------------------------------------------------------------------------
    "Hello {F},\n\nThe samples left {T} this morning.\n\nBest,\n{F2}",
    "Hi all, please welcome {P}, who joins us from {O}.",
    "{F}, could you forward this to {S}?",
    "Thanks again for hosting us in {T}. Warm wishes to {F} and the kids.",
    "Cheers,\n{F}",
    "Looping in {P} for visibility.",
    "I'm out of office until the 14th. For urgent matters, contact {P}.",
    "Best regards\n{P}\n{O}\n{K}",
    "Sorry {F}, I missed your call — I was on the train to {T}.",
    "Sent on behalf of {P}.",
    # --- fiction -------------------------------------------------------------------------------------------
    "{F} stood at the window, watching the rain fall over {T}.",
    "\"Not again,\" {F} muttered, and {F2} laughed.",
    "The letter was signed simply: {F}.",
    "{S} had never liked the sea.",
    "It was the winter {F} left {T} for good.",
    "Old {S} kept bees behind the chapel.",
    "They buried {P} in the little cemetery outside {T}.",
    "{F} and {F2} reached {K} after three days on the road.",
    "Nobody in {T} remembered the {S} family anymore.",
    "\"Run,\" whispered {F}.",
    # --- reviews -------------------------------------------------------------------------------------------
    "The new {S} novel is slow, but the last chapter is worth it.",
    "Stayed three nights in {T}; our host {F} was wonderful.",
    "{S}'s direction is sharp, though the script drags.",
    "Great food, rude staff. Ask for {F}, she's the only nice one.",
    "Five stars for the {T} branch, one star for the one in {K}.",
    "If you liked the first {S} album, skip this one.",
    "Our guide, {P}, knew every church in {T}.",
    "Bought this for my husband {F}. He hates it.",
    "The translation by {P} keeps the rhythm of the original.",
    "Decent hotel, terrible location: nowhere near the centre of {K}.",
    # --- meeting notes -------------------------------------------------------------------------------------
    "Attendees: {P}, {P2}, {P3}\nApologies: {F}",
    "Action: {F} to draft the budget; {S} to review.",
    "{F} raised the question of the {T} office lease.",
    "Decision: move the offsite from {T} to {K}.",
    "Minutes taken by {P}.",
    "Next meeting chaired by {S}.",
    "- {F}: hiring update\n- {F2}: roadmap\n- {F3}: AOB",
    "{S} and {S2} disagreed on the timeline; parked for now.",
    "Notes: Q3 numbers from the {C} market look weak ({F} to dig in).",
    "Follow-up with {P} ({O}) on the pilot in {T}.",
    # --- lists ---------------------------------------------------------------------------------------------
    "Winners: {P}, {P2} and {P3}.",
    "{F}, {F2}, {F3}",
    "1. {P}\n2. {P2}\n3. {P3}",
    "Shortlist: {S}, {S2}, {S3}.",
    "Cities on the tour: {K}, {T}, {T2}.",
    "Team B: {F}, {F2}, {F3}, and me.",
    "Guests: {P} (+1), {P2}, {F}",
    "Stops: {T} - {T2} - {K}",
    "Thanks to {F}, {F2}, {F3} and everyone who helped.",
    "Best new artists: {P}; {P2}; {P3}.",
    # --- speaker transcripts -------------------------------------------------------------------------------
    "{S}: Can everyone hear me?\n{S2}: Yes, go ahead.",
    "{F}: ok\n{F2}: sounds good",
    "INTERVIEWER: Where did you grow up?\n{S}: Mostly in {T}.",
    "[{P}] I think we should wait.",
    "{P}: Thank you, Chair. I'll be brief.",
    "{F} (host): Welcome back to the show.",
    "Q ({S}, {O}): When will the plant in {T} reopen?",
    "{F}: anyone seen my charger\n{F2}: nope",
    "Moderator: Our next speaker is {P}.\n{S}: Thanks for having me.",
    "{S} >> the build is green again",
    # --- social posts --------------------------------------------------------------------------------------
    "Happy birthday {F}!!! 🎉",
    "So proud of {F} for finishing the {K} marathon 🏃",
    "Sunset over {T} tonight. No filter.",
    "Congrats {P} on the new job at {O}!",
    "Miss you {F} ❤️",
    "Road trip: {T} → {T2} → {C}",
    "Shout-out to {F} for the amazing cake",
    "RIP {P}. You taught me everything.",
    "Back in {K} after two years away",
    "{F} just told me the funniest story about {F2}",
    # --- forms and records ---------------------------------------------------------------------------------
    "Name: {P}\nCity: {T}\nCountry: {C}",
    "Emergency contact: {P} (sister)",
    "Ship to: {P}, {A}, {T}",
    "Beneficiary: {P}; place of birth: {T}",
    "Patient: {S}, {F}. Referred by Dr {S2}.",
    "Driver {P} collected the load in {T}.",
    "Applicant {P} has lived in {C} since 2019.",
    "Guardian: {F} {S}",
    "Account holder: {P}\nBranch: {K}",
    "Witness: {P}, of {T}.",
    # --- travel --------------------------------------------------------------------------------------------
    "Our train from {K} to {T} was delayed by an hour.",
    "Booking for 2 adults under {S}, arriving {T} on Friday.",
    "We're renting a cabin outside {T} with {F} and {F2}.",
    "The ferry to {T} leaves at 7.",
    "Visa approved for {C}! {F} is still waiting for hers.",
    "Layover in {K}, then on to {T}.",
    "{F} recommends the fish market in {T}.",
    "Pick-up at {A}, {T}; passenger {P}.",
    "Day 3: drove along the coast to {T}. {F} got sunburnt.",
    "Anyone know a good dentist in {T}?",
    # --- academic ------------------------------------------------------------------------------------------
    "As {S} argues, the evidence from {C} is mixed.",
    "This builds on the work of {S} and {S2}.",
    "{S} et al. report a similar effect.",
    "Fieldwork was carried out in {T}, {C}.",
    "We thank {P} for comments on an earlier draft.",
    "Data were collected at hospitals in {K} and {T}.",
    "Contrary to {S}'s model, prices fell.",
    "Advisor: Prof. {P}",
    "The {S} conjecture remains open.",
    "Interviews with farmers near {T} suggest otherwise.",
    # --- sports --------------------------------------------------------------------------------------------
    "{S} equalised in the 88th minute.",
    "{P} beat {P2} in straight sets.",
    "The {T} side hasn't won away since March.",
    "Coach {S} praised the defence.",
    "{S} to {S2}, back to {S}, and it's in!",
    "{F} ran a personal best in {K}.",
    "Transfer news: {P} joins {O} from a club in {C}.",
    "{S}, {S2} and {S3} start on the bench.",
    "Qualifying in {C}: {S} on pole.",
    "Great save by {S}!",
    # --- hard negatives: capitalised words, no person or place ---------------------------------------------
    "Please update the Release Notes before Friday.",
    "The Quarterly Business Review moved to Thursday.",
    "Click Save Changes, then Refresh.",
    "Our Customer Success Team will reply within one Business Day.",
    "Error: Connection Timed Out (code 504)",
    "The Annual General Meeting approved the Dividend.",
    "New in Version 2.3: Dark Mode and Smart Folders.",
    "See Appendix B for the Methodology.",
    "Terms and Conditions apply. Offer valid until Sunday.",
    "The Finance Committee and the Board of Directors met in closed session.",
    # --- label lines and chat-transcript roles that are not speakers' names (added after a unit test showed
    # "Doc: call Jo ..." tagged as a person: the speaker frames above had no label of another kind) -----------
    "Doc: see the attached spec for {F}'s team.",
    "Note: the {T} office is closed on Monday.",
    "Re: invoice for {O}",
    "PS: {F} says thanks!",
    "Edit: fixed the link, sorry",
    "Ref: order {N}, shipped from {K}",
    "FYI: the VPN is down again",
    "User: what's the weather like in {K} in May?\nAssistant: Usually mild, but check a forecast before you go.",
    "System: You are a helpful assistant.\nUser: summarise this thread for {F}",
    "Human: translate good morning into Spanish\nAI: Buenos días",
    "Q: Who wrote the report?\nA: {P}, with help from {S}.",
    "Agenda: Budget, Hiring, AOB",
    "Result: Pass\nReviewer: {P}",
    "Bot: How can I help?\nCustomer: my parcel never reached {T}",
]

# The locales whose names fill the slots (Faker's person providers; Latin letters).
LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "pt_BR", "nl_NL", "pl_PL",
           "sv_SE", "fi_FI", "cs_CZ", "tr_TR", "ro_RO", "hu_HU", "id_ID", "ga_IE", "no_NO")
COMPANY_WORDS = ("Group", "Ltd", "Holdings", "Logistics", "Partners", "Systems", "Foods", "Bank", "& Sons",
                 "Consulting")
KINDS = {"P": "PERSON", "F": "PERSON", "S": "PERSON", "T": "LOCATION", "K": "LOCATION", "C": "LOCATION",
         "O": "ORGANIZATION", "A": "STREET_ADDRESS", "N": ""}
BATCHES = 5
DATA = Path(__file__).resolve().parent


def _latin(name: str) -> bool:
    return name.isalpha() and name[0].isupper() and all(ord(c) < 0x250 for c in name)


@cache
def _names(attrs: tuple[str, ...]) -> tuple[str, ...]:
    out: set[str] = set()
    for locale in LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in attrs:
            names = vars(provider).get(attr)
            if isinstance(names, dict | tuple | list | set | frozenset):
                out.update(n for n in names if isinstance(n, str) and _latin(n))
    return tuple(sorted(out))


@cache
def _places(section: str) -> tuple[str, ...]:
    out, current = [], ""
    for line in (DATA / "places.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
        elif line.startswith("- ") and current == section:
            out.append(line[2:].removesuffix(" *").strip())
    return tuple(sorted(set(out)))


@cache
def _towns() -> tuple[str, ...]:
    lines = (DATA / "towns.txt").read_text(encoding="utf-8").splitlines()
    return tuple(t for t in lines[1:] if t and t.replace(" ", "").replace("-", "").isalpha() and len(t) <= 20)


_STREETS = ("Main Street", "Station Road", "Rua Nova", "Kirkegata", "Via Roma", "Rue de la Paix", "Oak Avenue",
            "Lindenweg", "Calle Mayor", "Mill Lane")


def _value(slot: str, rnd: random.Random) -> str:
    kind = slot[0]
    if kind == "P":
        return f"{rnd.choice(_names(('first_names', 'first_names_male', 'first_names_female')))} {rnd.choice(_names(('last_names',)))}"
    if kind == "F":
        return rnd.choice(_names(("first_names", "first_names_male", "first_names_female")))
    if kind == "S":
        return rnd.choice(_names(("last_names",)))
    if kind == "T":
        return rnd.choice(_towns())
    if kind == "K":
        return rnd.choice(_places("cities"))
    if kind == "C":
        return rnd.choice(_places("countries"))
    if kind == "O":
        return f"{rnd.choice(_names(('last_names',)))} {rnd.choice(COMPANY_WORDS)}"
    if kind == "A":
        return f"{rnd.randint(1, 240)} {rnd.choice(_STREETS)}"
    return str(rnd.randint(10000, 99999))


def batch_of(frame: int) -> int:
    """The batch (0..BATCHES-1) frame number `frame` is dealt to, by a hash: whole frames per batch."""
    return hashlib.sha256(f"pii-handwritten8:{frame}".encode()).digest()[0] % BATCHES


def samples(per_frame: int = 4, seed: int = 8) -> list[tuple[str, list[tuple[str, int, int]], int]]:
    """(text, gold spans (kind, start, end), frame number) for every frame filled `per_frame` times."""
    rnd = random.Random(seed)
    out = []
    for number, written in enumerate(FRAMES):
        lower = written.startswith("lc:")
        frame = written.removeprefix("lc:")
        for _ in range(per_frame):
            text, spans, pos = "", [], 0
            while (i := frame.find("{", pos)) >= 0:
                j = frame.index("}", i)
                text += frame[pos:i]
                slot = frame[i + 1:j]
                value = _value(slot, rnd)
                if KINDS[slot[0]]:
                    spans.append((KINDS[slot[0]], len(text), len(text) + len(value)))
                text += value
                pos = j + 1
            text += frame[pos:]
            if lower or rnd.random() < 0.1:
                text = text.lower()
            out.append((text, spans, number))
    return out
