"""The words of the demo scenario: names, numbering plans, accounts, templates, texts.

All people, books, authors and the publisher are invented. The business numbers are
"drama numbers" that the Bundesnetzagentur keeps permanently unassigned for media use.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

# --- numbering plans: (country code, prefixes, weights, subscriber lengths per prefix) ---
_DE = [151, 152, 157, 159, 160, 162, 163, 170, 171, 172, 173, 174, 175, 176, 177, 178, 179]
_DE_W = [12, 8, 5, 4, 5, 4, 3, 6, 8, 8, 5, 3, 5, 8, 5, 4, 7]
_AT = [650, 660, 664, 676, 680, 681, 688, 699]
# Subscriber lengths: four equally likely draws per prefix (0151: 8 digits, 0170: 7 or 8 ...).
MOBILE_PLANS = [
    (49, _DE, _DE_W, [[8] * 4 if p < 160 else [7, 7, 7, 8] for p in _DE]),
    (43, _AT, [6, 10, 22, 18, 8, 5, 6, 8], [[7, 7, 7, 8]] * len(_AT)),
    (41, [76, 77, 78, 79], [3, 2, 3, 5], [[7] * 4] * 4),
]
COUNTRIES = ["DE", "AT", "CH"]
LANGUAGES = [["de"] * 15 + ["en"], ["de-AT"] * 15 + ["en"], ["de-CH"] * 13 + ["en"]]
TIMEZONES = ["Europe/Berlin", "Europe/Vienna", "Europe/Zurich"]

# --- people ---------------------------------------------------------------------------
_FIRST = {
    ("DE", True): "Anna Lena Laura Julia Sarah Lisa Katharina Sophie Marie Hannah Lea Johanna "
                  "Clara Mia Emma Charlotte Franziska Sabine Petra Claudia Susanne Andrea Nicole "
                  "Stefanie Christina Melanie Kerstin Birgit Ulrike Monika Jana Nina Miriam "
                  "Carolin Svenja Annika Theresa Paula Greta Ida Frieda Merle Ayşe Elif",
    ("DE", False): "Lukas Jonas Leon Felix Maximilian Paul Finn Elias Ben Noah Tim Jan Niklas "
                   "Philipp Tobias Florian Sebastian Christian Michael Thomas Andreas Stefan "
                   "Markus Frank Jens Matthias Daniel Alexander David Moritz Jakob Henrik Till "
                   "Ole Malte Carsten Uwe Jürgen Wolfgang Bernd Emre Mehmet",
    ("AT", True): "Anna Lena Magdalena Verena Theresa Elisabeth Barbara Katrin Viktoria Anja "
                  "Sophie Johanna Laura Julia Sarah Lisa Marlene Valentina Hannah Christina",
    ("AT", False): "Florian Dominik Lukas Stefan Manuel Matthias Gerhard Johann Markus Andreas "
                   "Christoph Bernhard Wolfgang Fabian Raphael Tobias Simon Jakob Maximilian Paul",
    ("CH", True): "Anna Laura Sarah Nadine Andrea Corinne Seraina Fabienne Livia Nina Sandra "
                  "Martina Ursula Regula Mirjam Chiara Noemi Elena Lara Alina",
    ("CH", False): "Luca Noah Reto Urs Beat Marco Lukas Simon Jonas Nico Andreas Thomas Daniel "
                   "Patrick Christoph Fabian Matthias Adrian Dominik Samuel",
}
_LAST = {
    "DE": "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Schäfer "
          "Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun Krüger "
          "Hofmann Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze "
          "Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller "
          "Weiß Jung Hahn Vogel Yılmaz Kaya Nowak Kowalski Popović Petersen Jansen Brandt",
    "AT": "Gruber Huber Bauer Wagner Müller Pichler Steiner Moser Mayer Hofer Leitner Berger "
          "Fuchs Eder Fischer Schmid Winkler Weber Schwarz Maier Schneider Reiter Mayr Schmidt "
          "Wimmer Egger Brunner Lang Baumgartner Auer",
    "CH": "Müller Meier Schmid Keller Weber Huber Schneider Meyer Steiner Fischer Gerber Brunner "
          "Baumann Frei Zimmermann Moser Widmer Wyss Graf Roth Suter Baumgartner Bachmann Studer "
          "Bühler Kälin Lüthi Marti Ammann Hofer",
}
_EMOJI = ["📚", "🌻", "☀️", "🐾", "✨", "🌿"]
_CITY_LINES = [
    ("Berlin Hamburg München Köln Frankfurt_am_Main Leipzig Dresden Potsdam Stuttgart "
     "Düsseldorf Hannover Bremen Nürnberg Münster Freiburg_im_Breisgau Rostock Kiel Erfurt "
     "Bonn Göttingen Lübeck Greifswald"),
    "Wien Graz Linz Salzburg Innsbruck Klagenfurt Villach Wels St._Pölten Dornbirn",
    "Zürich Basel Bern Luzern St._Gallen Winterthur Zug Aarau Chur Schaffhausen",
]
CITIES = [[c.replace("_", " ") for c in line.split()] for line in _CITY_LINES]


def names(rng: np.random.Generator, country: np.ndarray, female: np.ndarray):
    """(first names, WhatsApp profile names) as object arrays; contact-sized, so plain Python."""
    first = np.empty(len(country), object)
    last = np.empty(len(country), object)
    for code, cc in enumerate(COUNTRIES):
        for fem in (True, False):
            rows = np.flatnonzero((country == code) & (female == fem))
            pool = _FIRST[cc, fem].split()
            first[rows] = np.array(pool, object)[rng.integers(0, len(pool), len(rows))]
        rows = np.flatnonzero(country == code)
        pool = _LAST[cc].split()
        last[rows] = np.array(pool, object)[rng.integers(0, len(pool), len(rows))]
    style = rng.choice(4, len(country), p=[0.72, 0.12, 0.10, 0.06])
    emoji = rng.integers(0, len(_EMOJI), len(country))
    profile = np.array([
        f"{f} {la}" if s == 0 else f"{f} {la[0]}." if s == 1 else f if s == 2 else f"{f} {_EMOJI[e]}"
        for f, la, s, e in zip(first, last, style, emoji, strict=True)], object)
    return first, profile


HOUR_P = np.array([1, 0.5, 0.3, 0.2, 0.2, 0.4, 1, 2.5, 4, 5, 6, 6, 6, 5.5, 5, 5, 5.5, 6, 6.5,
                   7, 7.5, 7, 5, 2.5])
HOUR_P = HOUR_P / HOUR_P.sum()

# --- how contacts arrived and whether they opted in to marketing ------------------------
CHANNELS = ["double_opt_in_form", "in_store", "chat", "import"]
CHANNEL_P = [0.40, 0.20, 0.26, 0.14]
OPT_IN_P = [0.96, 0.82, 0.62, 0.92]     # the form: some never click the confirmation link
IMPORTS = {1: datetime(2024, 11, 12, 8, 14, tzinfo=UTC),   # newsletter CRM migration
           2: datetime(2025, 2, 3, 9, 2, tzinfo=UTC)}       # the readings' guest list

GENRES = ["Kinderbuch", "Bilderbuch", "Jugendbuch", "Krimi", "Thriller", "Regionalkrimi"]
GENRE_P = [0.24, 0.12, 0.08, 0.30, 0.14, 0.12]
KIDS_GENRES = [0, 1, 2]
LABELS = ["Neukunde", "Stammkunde", "Kinderbuch", "Krimi", "Lesung", "VIP"]
LABEL_COLORS = [5, 11, 3, 14, 8, 1]
MIMES = ["image/jpeg", "audio/ogg; codecs=opus", "application/pdf", "image/webp"]
KINDS = ["text", "image", "audio", "document", "sticker", "template", "button"]

# Staff answer Mon-Fri 9-18 and Sat 10-16 (Europe/Berlin); index 0 = Monday.
OPEN_FROM = np.array([9, 9, 9, 9, 9, 10, 0])
OPEN_UNTIL = np.array([18, 18, 18, 18, 18, 16, 0])
BUSINESS_HOURS = {d: [["09:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")} | {
    "sat": [["10:00", "16:00"]], "sun": []}

ACCOUNTS: list[dict[str, Any]] = [
    dict(account_id=1, phone="+49 152 28817386", display_name="Lindenblatt Verlag",
         phone_number_id="114820563317402", waba_id="102290129340398",
         about="Kinderbücher & Krimis aus Berlin 📚",
         description="Der Lindenblatt Verlag macht seit 1987 Bilder- und Kinderbücher und "
                     "Krimis mit Lokalkolorit. Hier gibt es Lesetipps, Neuerscheinungen und "
                     "Hilfe zu Bestellungen.",
         category="Verlag", address="Am Lindenblatt 3, 10999 Berlin",
         email="leserservice@lindenblatt-verlag.example",
         websites=["https://lindenblatt-verlag.example", "https://lindenblatt-verlag.example/krimi"],
         marketing_cap_count=3, marketing_cap_days=7),
    dict(account_id=2, phone="+49 30 23125480", display_name="Lindenblatt Buchladen",
         phone_number_id="114820563317987", waba_id="102290129340398",
         about="Buchladen & Lesungen in Kreuzberg",
         description="Der Buchladen des Lindenblatt Verlags: Bücher aller Verlage, "
                     "Vorlesestunden für Kinder und Krimi-Lesungen. Reservierungen per WhatsApp.",
         category="Buchhandlung", address="Am Lindenblatt 3, 10999 Berlin",
         email="buchladen@lindenblatt-verlag.example",
         websites=["https://lindenblatt-verlag.example/buchladen"],
         marketing_cap_count=2, marketing_cap_days=7),
]

# --- books and templates ----------------------------------------------------------------
BOOKS = {
    "kids": [("Fips und der Mondfuchs", "Hanne Olbricht", 4), ("Die Wolkenbäckerei", "Jorinde Kamp", 5),
             ("Ole und das Leuchtturmgeheimnis", "Till Marquardt", 8),
             ("Klara Kiesel rettet den Stadtpark", "Mareike Sonntag", 7),
             ("Das Flüstern im Apfelbaum", "Ida Brenner", 6), ("Drei Igel auf Reisen", "Paul Wendland", 3),
             ("Pippa Pfefferkorn und der verschwundene Zoo", "Lotte Jansen", 8),
             ("Der kleine Drache Bruno", "Svenja Ahlers", 4)],
    "crime": [("Nebel über dem Landwehrkanal", "Mara Lindqvist", 0),
              ("Tod am Kollwitzplatz", "Henrik Vossberg", 0), ("Das Schweigen der Spree", "Ruth Abendroth", 0),
              ("Kalte Spur nach Rügen", "Jonas Feldmann", 0), ("Der Buchhändler und die Tote", "Elke Marbach", 0),
              ("Mord im Nachtzug nach Wien", "Konrad Stiegler", 0),
              ("Schwarzer Schnee im Engadin", "Seraina Caduff", 0), ("Die letzte Fähre", "Nils Hagedorn", 0)],
}
TEASERS = ["Unser Lieblingsbuch der Saison!", "Die Presse ist begeistert.", "Jetzt mit signierten Exemplaren.",
           "Perfekt für lange Abende.", "Schon auf Platz 3 unserer Bestenliste."]
_STOP = " Keine Werbung mehr? Antworte mit STOPP."
# (account, name, body with {first_name} once, buttons or None, read effect, reply effect, reply pool)
TEMPLATES = [
    (1, "wochentipp", "Hallo {first_name}, unser Lesetipp der Woche: „{titel}“ von {autor}. {teaser} "
     "Mehr unter lindenblatt-verlag.example/tipp" + _STOP, "url", 0.0, 0.0, "general"),
    (1, "wochentipp_kurz", "{first_name}, diese Woche lesen wir „{titel}“ 📖 {teaser}" + _STOP,
     "url", 0.2, 0.1, "general"),
    (1, "kinderbuch_neu", "Hallo {first_name}, neu im Kinderbuch-Regal: „{titel}“ von {autor}, "
     "ab {alter} Jahren. {teaser}" + _STOP, "url", 0.25, 0.2, "general"),
    (1, "krimi_des_monats", "Guten Abend {first_name}, der Krimi des Monats ist da: „{titel}“ von "
     "{autor}. {teaser} Leseprobe: lindenblatt-verlag.example/krimi" + _STOP, "url", 0.1, 0.1, "general"),
    (1, "lesung_einladung", "Hallo {first_name}, {autor} liest am {datum} aus „{titel}“, im "
     "Lindenblatt Buchladen. Eintritt frei, Plätze begrenzt. Sollen wir dir einen Platz "
     "reservieren?" + _STOP, "rsvp", 0.3, 1.6, "event"),
    (1, "vip_vorab", "Hallo {first_name}, als VIP-Leser:in bekommst du „{titel}“ von {autor} vor "
     "allen anderen, als signiertes Vorab-Exemplar. Interesse? Antworte einfach mit JA.",
     None, 0.5, 2.2, "vip"),
    (1, "saison_angebot", "Hallo {first_name}, {anlass}: {angebot} Nur bis {datum} im "
     "Lindenblatt-Shop." + _STOP, "url", -0.1, -0.2, "general"),
    (2, "veranstaltungen_woche", "Hallo {first_name}, diese Woche im Lindenblatt Buchladen: "
     "Vorlesestunde am Samstag um 11 Uhr und „{titel}“ als Buch der Woche. Wir freuen uns auf "
     "dich!" + _STOP, None, 0.0, 0.0, "general"),
    (2, "lesung_einladung", "Hallo {first_name}, {autor} liest am {datum} aus „{titel}“ bei uns im "
     "Buchladen. Eintritt frei, Plätze begrenzt. Sollen wir dir einen Platz reservieren?" + _STOP,
     "rsvp", 0.3, 1.6, "event"),
    (2, "vorlesestunde", "Hallo {first_name}, am Samstag um 11 Uhr lesen wir „{titel}“ vor, für "
     "Kinder ab {alter} Jahren. Kommt vorbei!" + _STOP, None, 0.2, 0.3, "event"),
    (2, "krimi_nacht", "Hallo {first_name}, Krimi-Nacht im Buchladen am {datum}: {autor} liest "
     "aus „{titel}“. Karten 12 €, reservieren per Antwort." + _STOP, "rsvp", 0.2, 1.3, "event"),
]
BUTTONS = {
    "url": [{"type": "url", "text": "Zum Buch", "url": "https://lindenblatt-verlag.example/tipp"},
            {"type": "quick_reply", "text": "Keine Werbung mehr"}],
    "rsvp": [{"type": "quick_reply", "text": "Ja, bitte reservieren"},
             {"type": "quick_reply", "text": "Nein, danke"},
             {"type": "quick_reply", "text": "Keine Werbung mehr"}],
}
SEASONS = [((12, 1), "Adventszeit", "20 % auf alle Bilderbücher."),
           ((2, 14), "Valentinstag", "Krimis für zwei mit gratis Lesezeichen."),
           ((4, 23), "Welttag des Buches", "Zu jeder Bestellung ein Kinderbuch-Poster gratis."),
           ((7, 1), "Sommerferien", "Unsere Ferien-Lesekiste mit 3 Büchern für 25 €."),
           ((9, 20), "Krimi-Herbst", "Versandkostenfrei ab 20 €."),
           ((10, 27), "Halloween", "Gruselige Kinderbücher, 15 % Rabatt.")]

# --- texts in chats ---------------------------------------------------------------------
REPLIES = {
    "general": ["Klingt spannend!", "Danke für den Tipp 😊", "Ist das auch als E-Book erhältlich?",
                "Kann ich das im Laden abholen?", "Habe ich schon gelesen, ist super!",
                "Was kostet das Buch?", "Gibt es das auch als Hörbuch?", "Toll, danke!"],
    "event": ["Ja, bitte 2 Plätze reservieren!", "Wir kommen zu dritt 🙂", "Leider keine Zeit an dem Tag",
              "Gibt es noch Plätze?", "Ist die Lesung auch für Kinder geeignet?", "Ich komme gern!"],
    "vip": ["JA", "Ja, sehr gern!", "Oh toll, ja bitte!", "Ja, an die bekannte Adresse bitte."],
}
REPLY_ANSWERS = {
    "general": ["Danke für deine Nachricht! Ja, das Buch gibt es auch als E-Book und Hörbuch.",
                "Gern! Du kannst es bei uns im Buchladen oder online bestellen.",
                "Das freut uns! Viel Spaß beim Lesen 📚"],
    "event": ["Super, wir haben die Plätze für dich reserviert. Bis bald!",
              "Danke für die Rückmeldung! Es sind noch Plätze frei, wir haben dich eingetragen."],
    "vip": ["Wunderbar, das Vorab-Exemplar geht diese Woche an dich raus!"],
}
STOP_WORDS = ["STOPP", "Stopp", "stop", "Abmelden", "Bitte keine Werbung mehr", "STOP"]
STOP_CONFIRM = ("Du bekommst ab jetzt keine Werbenachrichten mehr von uns. Mit START kannst du "
                "dich jederzeit wieder anmelden.")
START_WORDS = ["START", "Start", "Bitte wieder anmelden"]
START_CONFIRM = "Schön, dass du wieder dabei bist! Du bekommst wieder unsere Lesetipps."
AWAY = ("Danke für deine Nachricht! Wir sind Mo–Fr 9–18 Uhr und Sa 10–16 Uhr für dich da und "
        "melden uns dann so schnell wie möglich.")
GREETING = "Hallo und willkommen beim Lindenblatt Verlag! Wie können wir dir helfen?"

# Service topics: (weight, customer openings, first answers).
TOPICS = {
    "bestellung": (0.26, ["Hallo, wo bleibt meine Bestellung? Ich habe sie vor einer Woche aufgegeben.",
                          "Hi! Ist meine Bestellung schon unterwegs?",
                          "Guten Tag, ich warte noch auf mein Paket mit zwei Kinderbüchern."],
                   ["Hallo! Deine Bestellung ist gestern rausgegangen, die Sendungsnummer kommt per Mail.",
                    "Danke für deine Geduld! Das Paket ist unterwegs und kommt morgen an.",
                    "Wir schauen gleich nach. Magst du uns die Bestellnummer schicken?"]),
    "empfehlung": (0.22, ["Könnt ihr mir ein Buch für meine Tochter (6) empfehlen?",
                          "Welcher Krimi ist gerade euer Favorit?",
                          "Ich suche ein Geschenk für meinen Opa, er mag Krimis aus Berlin."],
                   ["Sehr gern! „Die Wolkenbäckerei“ kommt bei Sechsjährigen super an.",
                    "Unser Favorit ist gerade „Nebel über dem Landwehrkanal“, spannend bis zur letzten Seite.",
                    "Für Berlin-Krimi-Fans empfehlen wir „Tod am Kollwitzplatz“."]),
    "lesung": (0.14, ["Gibt es noch Karten für die Lesung am Freitag?",
                      "Kann ich für die Vorlesestunde am Samstag zwei Kinder anmelden?"],
               ["Ja, es sind noch Plätze frei. Wir reservieren dir gern welche!",
                "Klar, die Kinder sind angemeldet. Wir freuen uns!"]),
    "reklamation": (0.12, ["Das Buch kam leider mit einer eingedrückten Ecke an.",
                           "Im Buch fehlen die Seiten 33 bis 48!"],
                    ["Oh nein, das tut uns leid! Wir schicken dir sofort ein neues Exemplar.",
                     "Entschuldige bitte! Ein Ersatz ist schon unterwegs, das alte darfst du behalten."]),
    "geschenk": (0.12, ["Kann man bei euch Gutscheine kaufen?", "Packt ihr die Bücher auch als Geschenk ein?"],
                 ["Ja! Gutscheine gibt es ab 10 € im Laden und online.",
                  "Sehr gern, die Geschenkverpackung ist kostenlos."]),
    "rechnung": (0.14, ["Könnt ihr mir die Rechnung noch einmal schicken?",
                        "Ich brauche eine Rechnung für die Schulbibliothek."],
                 ["Klar, hier kommt die Rechnung.", "Gern, die Rechnung schicken wir dir gleich hier."]),
}
FOLLOW_IN = ["Danke!", "Super, vielen Dank 😊", "Perfekt, dann warte ich ab.", "Alles klar.",
             "Und wie lange dauert das ungefähr?", "Kann ich es auch im Laden abholen?",
             "Prima, danke für die schnelle Antwort!", "Okay 👍", "Das ist nett, danke!"]
FOLLOW_OUT = ["Gern geschehen! Viel Freude beim Lesen 📚",
              "Sehr gern. Melde dich jederzeit, wenn noch etwas ist.",
              "Das dauert in der Regel 2–3 Werktage.",
              "Ja, die Abholung im Buchladen ist kostenlos möglich.",
              "Danke dir und einen schönen Tag!"]
CAPTIONS = ["Hier ein Foto vom Buch", "So kam das Paket an", "Dieses Buch meine ich", ""]
DOCUMENTS = ["Rechnung (PDF)", "Bestellbestätigung (PDF)"]

QUICK_REPLIES = [("/danke", "Danke für deine Nachricht, {first_name}! Wir melden uns gleich."),
                 ("/lieferzeit", "Bestellungen verschicken wir innerhalb von 1–2 Werktagen."),
                 ("/lesung", "Alle Lesungen findest du unter lindenblatt-verlag.example/termine."),
                 ("/abholung", "Du kannst deine Bestellung Mo–Sa im Buchladen abholen.")]

# Cloud API errors used by the demo: code -> (title, details).
ERRORS = {
    131026: ("Message undeliverable", "Message Undeliverable."),
    131049: ("This message was not delivered to maintain healthy ecosystem engagement.",
             "In order to maintain a healthy ecosystem engagement, the message failed to be delivered."),
    131000: ("Something went wrong", "Something went wrong."),
    131047: ("Re-engagement message", "Message failed to send because more than 24 hours have "
             "passed since the customer last replied to this number."),
}
