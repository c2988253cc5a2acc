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

import unicodedata

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

# Issue 17, eleventh attempt (branch `inject11`): the same classes in the forms a sentence of the six other languages
# takes (plural and feminine adjectives, formal and plural imperatives, infinitives, the formal "you"), and NOW, so
# that a sequence the model learned in English ("ignore ... previous ... instructions", "you are now ...") has the
# same class n-grams in German, French, Spanish, Italian, Portuguese and Dutch. Written from general vocabulary
# before any model scored them; no row of the labelled set was read to write them. Words of a few letters that
# are common in another sense ("di", "sie", "es", "seu") are left out. Counted afterwards (the rows not read): of
# these 350 new words 61 occur in some dev row, 31 in test rows only, 258 in no row. The ones in test rows only were
# kept, unlike the fourth round's 21 (whose author had read the generators' phrase lists, which hold test phrases):
# the point of the classes is words no training row has; the validation cannot measure those words' effect.
_CROSS_LINGUAL = {
    "SHOW": "zeigen wiedergeben offenlegen enthülle enthüllen verraten preisgeben schreibe "
            "affichez montrez répétez révélez dévoilez donnez écrivez recopiez imprimez imprimer divulgue divulguez "
            "partage partagez citez dites montrer donner écrire dévoiler divulguer "
            "muéstrame muestre mostrar revele repita escriba dime comparte comparta divulga imprima enseñar "
            "mostrate mostrare rivela rivelare rivelami svelare svelami scrivere dimmi condividi elenca riporta "
            "mostre revele escreva diga compartilhe partilhe exiba exibir "
            "vertel noem tonen onthullen weergeven",
    "INSTR": "instruktionen befehle systemanweisungen systemprompt einstellungen paramètres réglages ordres invite "
             "órdenes directivas ajustes direttive ordini impostazioni consegne ordens diretivas configurações "
             "definições opdrachten instellingen richtlijn systeemprompt",
    "HIDDEN": "vorherigen vorherige vorigen vorige früheren frühere obigen obige bisherige vorangegangenen "
              "ursprünglichen anfänglichen internen interne vertraulichen vertrauliche versteckten "
              "précédentes précédents antérieures antérieurs originales initiales internes confidentielles "
              "anteriores previas previos internas confidenciales "
              "precedenti originali riservate confidenziali nascosti segreti "
              "prévias originais confidenciais ocultas "
              "eerdere voorgaande vertrouwelijke bovenstaande",
    "RULE": "regel einschränkungen beschränkungen grenzen vorschriften sicherheitsregeln limites filtres politiques "
            "éthique interdits restricciones limitaciones límites políticas ética regla restrizioni limitazioni "
            "limiti regola politiche etica vincoli restrições limitações regra beperkingen beleid ethiek",
    "NEG": "kein keinen keiner deaktiviert abgeschaltet ungefiltert unzensiert uneingeschränkt frei "
           "désactivé désactivés désactivées levées levés libre libéré illimitée "
           "desactivado desactivadas desactivados eliminadas eliminados ilimitada "
           "nessun nessuno disattivato disattivate disattivati libero rimosse rimossi illimitata "
           "nenhum desativado desativadas desativados livre removidas removidos "
           "uitgeschakeld vrij verwijderd ongefilterd",
    "AUTH": "systemadministrator administratorin entwicklerin eigentümer inhaber geschäftsführung "
            "système administratrice administrateurs développeurs opérateurs propriétaire "
            "sistema administradora administradores desarrolladores operadores propietario dueño "
            "amministratrice amministratori sviluppatori operatori proprietario titolare "
            "desenvolvedor desenvolvedores proprietário dono "
            "systeem beheerders ontwikkelaars eigenaar",
    "ROLE": "spiele verkörpere simuliere modus jouez semblant imaginez incarnez simule simulez "
            "juega juegue imagina papel modo actúa ruolo modalità recita jogue simule atue interprete "
            "alsof simuleer",
    "DROP": "ignorieren ignoriert verwirf verwerfe übergehe überspringe missachten umgehen "
            "ignorez ignorer oublie oubliez oublier néglige négligez contournez contourner écarte écartez "
            "ignoren olvide olvídate olvidar descarta descarte desestima omita "
            "ignorate ignori ignorare dimentichi dimenticare tralascia trascura scarta aggirare "
            "ignorem esquece esqueçam esquecer desconsidere desconsidera despreze contorne "
            "negeren negeert vergeet omzeilen verwerp",
    "YOU": "deinen deiner deinem bist vous votre vos usted ustedes eres estás sei tuoi tue voi vostro "
           "você vocês u uw jullie bent jou",
    "NOW": "now henceforth onwards forthwith jetzt nun fortan sofort maintenant désormais dorénavant ahora "
           "adesso ora agora voortaan nu",
}

# Second round, written after the first round's validation and before any test figure: the forms that the dev
# rows' missed German and Dutch role-play and demands used ("spielen wir", "sag mir", "knackt", "inbreekt",
# "weigert", "richtlinie"), with the same forms in the other languages. Chosen by reading dev rows, so this round's
# validation figures are optimistic for German and Dutch (bench/RESULTS.md, eleventh attempt).
_CROSS_LINGUAL_2 = {
    "SHOW": "sag sage sagen erzähl erzähle erzählen nenn zeg vertellen diz dizer decir dire",
    "ROLE": "spielen spielt jouons jouer jugamos juguemos jugar giochiamo giocare jogamos jogar spelen speelt",
    "HARM": "knacken knackt knacke einbrechen aufbrechen manipulieren inbreken inbreekt kraken craquer forcer forzar scassinare forzare arrombar invadir falsifiziere vervals",
    "RULE": "richtlinie weigern weigert verweigern verweigert refuser refuse refusez rechazar rechaza negarse rifiutare rifiuta recusar recusa weigeren",
    "NEG": "niemals jamais nunca mai nooit",
}


def fold(word: str) -> str:
    """`word` without its accents (NFD, combining marks dropped): "instruções" -> "instrucoes"."""
    return "".join(c for c in unicodedata.normalize("NFD", word) if not unicodedata.combining(c))


WORD_CLASS: dict[str, str] = {}
for _name, _words in _CLASSES.items():
    for _word in _words.split():
        WORD_CLASS.setdefault(_word, _name)
for _more in (_CROSS_LINGUAL, _CROSS_LINGUAL_2):
    for _name, _words in _more.items():
        for _word in _words.split():
            WORD_CLASS.setdefault(_word, _name)
# a word written without its accents has its class too ("precedentes", "instrucoes", "revele")
for _word, _name in list(WORD_CLASS.items()):
    WORD_CLASS.setdefault(fold(_word), _name)
