# ruff: noqa: E501  (word lists: one class per block reads best)
"""Word classes for the learned injection model (`injection_model`): a feature is also made of the *classes* of
the words a text uses, so a paraphrase that swaps "reveal" for "disclose", or "instructions" for "briefing",
keeps the features of the class sequence (SHOW ... HIDDEN ... INSTR) the model learned on other words.

Written for this project from general vocabulary (English and the six other languages of the labelled set), not
from the test split's rows. A word belongs to the first class that lists it. The lists are part of the model:
changing them changes the features, and the training script must be run again (`--check` fails otherwise).

Issue 17, fourth round: more words in every class (synonyms and the six languages' forms), and DROP (the verbs of
an override: ignore, forget, disregard, bypass, in the seven languages). Their author had also written the sixth
batch's phrases and read the generators, whose phrase lists hold test phrases too; so the 21 added words that
occur in test rows only (in no training row) were taken out again: a word no training row has never changes the
fitted weights, it could only have lifted the test figures.
"""

from __future__ import annotations

_CLASSES = {
    "SHOW": "print show reveal display output repeat recite dump disclose expose leak share paste quote copy reproduce echo "
            "write type spell list tell give return unveil transcribe read reprint regurgitate replay narrate summarise "
            "summarize translate encode "
            "zeig zeige gib wiederhole schreib verrate kopiere affiche montre répète recopie dévoile révèle écris donne "
            "muestra enseña repite copia revela escribe dame mostra ripeti ricopia svela scrivi dammi repete escreve toon "
            "herhaal kopieer onthul schrijf geef "
            "dictate render format emit relay divulge surface unmask retype restate "
            "nenne zitiere drucke ausgeben montre-moi affiche-moi citer copier afficher révéler répéter imprime "
            "cita imprime revelar repetir copiar mostrami citami stampa ripetere copiare "
            "mostra-me cita imprime revelar repetir copiar laat citeer druk toon herhalen",
    "INSTR": "instructions instruction prompt prompts guidelines directives directive configuration config setup briefing "
             "brief guidance orders directions preamble programming constraints settings persona "
             "anweisungen vorgaben konfiguration einrichtung systemnachricht consignes indications instrucciones "
             "indicaciones configuración istruzioni indicazioni configurazione instruções orientações configuração "
             "instructies aanwijzingen configuratie opdracht systeembericht "
             "wording preprompt metaprompt sysprompt initialisation initialization bootstrapping charter "
             "anweisung regelwerk vorgabe consigne instructions directive directives instrucción directrices "
             "istruzione instrução diretrizes instructie richtlijnen",
    "RULE": "rules rule restrictions restriction filters filter filtering limits limit policies policy safety ethics "
            "ethical morals moral guardrails safeguards censorship censored alignment moderation refusal refusals refuse "
            "regeln richtlinien règles règle filtre morale reglas normas filtros regole norme filtri regras regels moraal",
    "HIDDEN": "hidden secret confidential initial original internal private earlier previous prior above top beginning "
              "start launch launched preceding opening backstage base before first "
              "versteckte geheimen geheime ursprüngliche bisherigen vorher anfang cachées cachée secrètes début "
              "précédent ocultas oculta secretas principio anterior nascoste segrete inizio precedente escondidas "
              "início verborgen begin eerder "
              "concealed undisclosed invisible underlying behind unseen starting "
              "verborgene verborgenen geheim caché cachés secret secrète secrets initiales initial "
              "oculto ocultos secreto secreta iniciales nascosta segreto iniziali "
              "escondido secreto secreta iniciais geheime verborgene oorspronkelijke",
    "NEG": "no without free freed unbound unfiltered uncensored unrestricted limitless removed disabled off gone lifted "
           "suspended waived never zero nothing none void revoked cancelled canceled expired obsolete withdrawn "
           "rescinded deleted erased paused reset blank null "
           "ohne keine nicht mehr aufgehoben erloschen hinfällig gelöscht sans aucun aucune annulé annulées plus expiré "
           "caduc sin ningún ninguna anulado anuladas caducado senza nessuna annullate scadute sem nenhuma expiraram "
           "zonder geen vervallen verlopen gewist "
           "wiped cleared invalid scrapped unchained jailbreak jailbroken unbounded "
           "gelöscht ungültig effacé effacées supprimé supprimées illimité borrado borrada eliminado ilimitado "
           "eliminato illimitato apagado eliminado ilimitado onbeperkt",
    "AUTH": "system operator admin administrator administrators vendor developer developers root owner management "
            "headquarters provider maintainers supervisor authorised authorized authorising authorizing authorization "
            "authorisation authority official priority override clearance privileges elevated sysadmin superuser "
            "betreiber hersteller anbieter entwickler opérateur administrateur fournisseur développeur operador "
            "administrador proveedor desarrollador operatore amministratore fornitore sviluppatore fornecedor "
            "programador beheerder leverancier ontwikkelaar",
    "ROLE": "pretend act roleplay role play character simulate become mode imagine story scene game fictional "
            "hypothetically improv spiel rolle jeu rôle incarnes juego finge finta fingir spel rol "
            "persona roleplaying pretending embody portray npc screenplay "
            "rollenspiel figur spielst personnage incarne incarner joue personaje interpreta encarna personaggio "
            "interpreti fingi personagem interpreta finja personage speel",
    "HARM": "bomb bombs explosive explosives detonator grenade weapon weapons gun guns firearm ammunition napalm thermite "
            "poison poisoning toxin ricin anthrax nerve meth methamphetamine cocaine heroin fentanyl opioids lsd narcotics "
            "drugs hack hacking hacker crack cracking malware ransomware virus worm keylogger phishing exploit botnet ddos "
            "steal stealing theft shoplift burgle burglary rob robbery hotwire lockpick launder laundering counterfeit forge "
            "forged forgery fake smuggle smuggling stalk stalking dox doxx blackmail extort kidnap murder kill "
            "bombe waffe gift droge hacken stehlen fälschen arme poison drogue pirater voler falsifier bomba arma veneno "
            "droga hackear robar falsificar rubare falsificare armi roubar falsificar wapen vergif stelen vervalsen",
    "DROP": "ignore ignoring disregard disregarding forget forgetting discard override overrule bypass circumvent "
            "ignoriere ignorier vergiss vergessen missachte umgehe ignore contourne ignora "
            "ignorad olvida olvidad omite salta dimentica dimenticate aggira esqueça ignorar negeer "
            "omzeil",
    "YOU": "you your you're yourself du dein deine dir dich tu ton ta tes toi tú te tus ti tuo tua teu jij je jouw",
}

WORD_CLASS: dict[str, str] = {}
for _name, _words in _CLASSES.items():
    for _word in _words.split():
        WORD_CLASS.setdefault(_word, _name)
