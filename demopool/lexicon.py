"""Built-in vocabulary of the demo pool generator (``demopool``): English topics, sentence
templates, other languages, web boilerplate and spam material. Written for this project."""

from __future__ import annotations

# --- English: topics ------------------------------------------------------------------------------
# Per topic: countable nouns (singular), mass nouns, verbs (base form, transitive), adjectives,
# people (singular nouns). Plurals and third-person forms are made by rule (``_plural``, ``_third``).
TOPICS: dict[str, dict[str, str]] = {
    "cooking": {
        "nouns": "recipe kitchen oven knife pan pot spoon bowl onion tomato potato carrot lemon sauce soup "
        "salad sandwich cake pie cookie loaf dish meal dinner breakfast lunch ingredient spice herb "
        "vegetable fruit apple pepper cucumber noodle dumpling skillet board",
        "mass": "flour butter sugar salt garlic rice pasta cheese bread chicken beef fish olive oil honey "
        "cream yogurt basil cinnamon chocolate coffee tea",
        "verbs": "bake cook chop slice stir boil roast grill season mix prepare serve taste fry simmer "
        "knead whisk peel marinate toast garnish",
        "adjs": "fresh crispy tender spicy sweet savory golden warm homemade simple delicious juicy "
        "creamy hearty light rich ripe crunchy salty fragrant",
        "people": "cook chef baker guest host family member beginner food writer",
    },
    "gardening": {
        "nouns": "garden seed plant flower tree shrub bed pot root leaf branch hedge lawn weed tool "
        "shovel rake hose greenhouse bulb seedling vine berry rose tulip orchard fence trellis",
        "mass": "soil compost mulch water sunlight fertilizer grass moss clay sand",
        "verbs": "plant water prune dig grow harvest trim weed fertilize transplant cover protect "
        "mulch sow support feed",
        "adjs": "green healthy shady sunny dry moist young sturdy colorful fragrant hardy native "
        "tall small wild tidy organic",
        "people": "gardener neighbor grower farmer landscaper volunteer",
    },
    "travel": {
        "nouns": "trip journey ticket flight train bus station airport hotel hostel room map city "
        "village beach island mountain museum market bridge street passport suitcase backpack guide "
        "tour harbor castle valley cathedral restaurant",
        "mass": "luggage scenery weather traffic food culture history",
        "verbs": "visit explore book pack plan reach cross discover photograph enjoy rent follow "
        "leave miss pass",
        "adjs": "busy quiet famous ancient remote scenic crowded charming cheap expensive local "
        "historic coastal narrow colorful modern",
        "people": "traveler tourist guide driver local resident backpacker pilot",
    },
    "technology": {
        "nouns": "computer laptop phone tablet screen keyboard battery server network program app "
        "website database browser update feature device chip camera printer router password file "
        "folder backup cable sensor robot algorithm",
        "mass": "software hardware memory storage data power bandwidth code security",
        "verbs": "install update download upload restart configure test connect charge replace "
        "measure store encrypt share debug",
        "adjs": "fast slow new old reliable secure wireless portable digital powerful cheap simple "
        "complex smart efficient",
        "people": "developer engineer user customer designer technician student manager",
    },
    "health": {
        "nouns": "doctor patient hospital clinic habit diet exercise muscle heart lung bone vitamin "
        "symptom treatment routine walk meal snack glass bottle checkup injury workout",
        "mass": "sleep stress water protein fiber blood pressure energy weight",
        "verbs": "reduce improve avoid increase track stretch monitor prevent treat strengthen "
        "support relax balance",
        "adjs": "healthy regular daily balanced gentle mild serious common chronic active calm "
        "strong tired careful",
        "people": "doctor nurse patient trainer athlete parent adult child",
    },
    "finance": {
        "nouns": "budget account bank loan bill payment card saving investment fund share market "
        "price cost receipt invoice salary pension mortgage tax return plan goal fee bond",
        "mass": "money cash debt interest income credit insurance inflation",
        "verbs": "save spend invest borrow pay earn compare cut track plan review reduce manage "
        "balance protect",
        "adjs": "monthly annual fixed low high extra small large careful safe risky personal "
        "financial steady smart",
        "people": "investor saver customer owner accountant adviser buyer seller",
    },
    "history": {
        "nouns": "empire king queen war battle treaty city century kingdom castle church ruler army "
        "ship village document letter map monument revolution border colony dynasty republic",
        "mass": "trade power land religion wealth evidence",
        "verbs": "build defend rule conquer found destroy record describe study sign lose win "
        "control visit restore",
        "adjs": "ancient medieval royal powerful early late famous small rich poor northern "
        "southern long bitter great",
        "people": "historian soldier merchant scholar monk farmer king queen",
    },
    "sports": {
        "nouns": "team player coach match game season league ball goal field court race runner "
        "bike helmet shoe score fan stadium referee championship trophy practice tournament",
        "mass": "training speed strength fitness teamwork",
        "verbs": "train win lose play score kick throw catch practice watch coach join lead "
        "defend beat",
        "adjs": "young fast strong tired talented close tough final local national professional "
        "amateur loud proud",
        "people": "player coach fan athlete runner captain referee swimmer",
    },
    "science": {
        "nouns": "planet star moon river ocean forest animal bird insect cell molecule atom "
        "experiment sample theory model telescope microscope volcano glacier storm species "
        "fossil rock island wave",
        "mass": "light heat energy gravity oxygen carbon water ice dust",
        "verbs": "observe measure study explain predict collect test compare describe record "
        "absorb reflect produce change",
        "adjs": "tiny huge distant bright cold hot deep dense rare common ancient careful "
        "natural complex",
        "people": "scientist researcher student astronomer biologist teacher observer",
    },
    "home": {
        "nouns": "house room wall floor door window roof kitchen bathroom shelf table chair lamp "
        "carpet curtain drawer cabinet garage stair paint brush hammer nail screw ladder",
        "mass": "furniture wood paint dust glass tile plaster",
        "verbs": "clean paint fix repair build hang move measure replace sand seal decorate "
        "organize install",
        "adjs": "clean bright dark cozy spacious small old new wooden empty tidy modern warm "
        "simple sturdy",
        "people": "homeowner tenant builder painter plumber carpenter neighbor",
    },
    "education": {
        "nouns": "school class lesson teacher student book library exam test homework course "
        "lecture essay project grade subject language skill question answer notebook university "
        "classroom chapter",
        "mass": "knowledge practice feedback research reading writing",
        "verbs": "learn teach read write study explain review practice answer discuss improve "
        "prepare finish remember",
        "adjs": "difficult easy clear useful short long curious patient bright busy important "
        "new basic advanced",
        "people": "teacher student parent tutor professor learner reader",
    },
    "music": {
        "nouns": "song album band singer guitar piano drum violin concert stage melody chord "
        "rhythm note record studio track voice festival choir lyric orchestra",
        "mass": "music jazz harmony sound noise silence",
        "verbs": "play sing record write hear tune perform practice compose mix release enjoy "
        "learn follow",
        "adjs": "loud soft slow fast catchy classic live acoustic electric gentle famous "
        "beautiful strange",
        "people": "musician singer drummer composer listener fan pianist",
    },
}

# --- English: shared words -------------------------------------------------------------------------
GENERAL_PEOPLE_PLURAL = (
    "many people|most people|our readers|some experts|most experts|local residents|many families|"
    "our customers|a lot of people|young people|older adults|many beginners|small businesses"
).split("|")
GENERAL_PEOPLE_SING = (
    "my neighbor|a friend of mine|my sister|my brother|our editor|the author|a reader|my colleague|"
    "my grandmother|our teacher|the owner|a local expert"
).split("|")
CONNECTIVES = (
    "However,|In many cases,|For example,|As a result,|At the same time,|In practice,|Of course,|"
    "On the other hand,|In general,|For this reason,|Fortunately,|Interestingly,|In my experience,|"
    "Most of the time,|Surprisingly,|Even so,|Later,|Meanwhile,|In the end,|Still,|Instead,|"
    "First of all,|After that,|Sometimes,|Today,"
).split("|")
TIMES = (
    "every morning|in the evening|on weekends|during the winter|once a week|twice a month|every year|"
    "at the end of the day|in the long run|from time to time|these days|in the spring|after lunch|"
    "before dinner|during the summer|on Sunday afternoons|every few days|at night|in the autumn|"
    "over the holidays|early in the day|within a few weeks|all year round|on rainy days"
).split("|")
ADV_PRE = "often usually sometimes rarely always also really simply quickly carefully".split()
ADV_POST = (
    "quickly|carefully|easily|slowly|well|regularly|together|again|at home|with care|by hand|"
    "without much effort|in small steps|in the right order|on time|for a while|as soon as possible"
).split("|")
EVALS = "important useful easy hard helpful wise smart common possible necessary fun cheaper safer".split()
PREPS = "in on with for near during after before without from at under around inside across behind".split()
DETS_S = "the|a|this|that|every|one|our|my|your|each".split("|")
DETS_P = "the|some|many|most|these|those|our|your|several|two|three|a few".split("|")
DETS_M = "the|some|more|less|enough|fresh|extra|good|this".split("|")
NUM_WORDS = "two three four five six seven eight nine ten twelve fifteen twenty".split()
TIME_UNITS = "minutes hours days weeks".split()
PLACES = (
    "London|Paris|Chicago|Toronto|Sydney|Berlin|Madrid|Boston|Denver|Seattle|Dublin|Edinburgh|Austin|"
    "Portland|Melbourne|Auckland|Vancouver|Glasgow|Leeds|Manchester|Bristol|Lisbon|Vienna|Prague|Oslo|"
    "Helsinki|Montreal|Ottawa|Atlanta|Phoenix|Dallas|Houston|Nashville|Brighton|Cardiff|York|Oxford|"
    "Cambridge|Sheffield|Kyoto|Osaka|Singapore|Cape Town|Nairobi|Lima|Santiago|Denmark|Norway|Scotland|"
    "Wales|Ireland|Texas|Oregon|Ohio|Florida|Ontario|Quebec|Bavaria|Tuscany|Provence|New Zealand|"
    "the Lake District|the Alps|the north|the city centre|the countryside"
).split("|")

# Sentence templates. Slots: $NS singular noun phrase, $NP plural noun phrase, $OBJ any noun phrase,
# $N bare noun, $NN bare plural, $V verb, $VS verb (3rd person), $A adjective, $PS / $PPL a person /
# people, $CONN connective, $TIME, $APRE / $APOST adverbs, $EVAL, $PREP, $NUM, $UNIT, $PLACE.
TEMPLATES = [
    "$CONN $NS $VS $OBJ $PREP $OBJ.",
    "$PPL $V $OBJ $TIME.",
    "It is $EVAL to $V $OBJ before you $V $OBJ.",
    "If you want to $V $OBJ, you should $V $OBJ first.",
    "$NP that $V $OBJ are often $A and $A.",
    "There are $NUM $A $NN $PREP $OBJ, and each of them $VS $OBJ.",
    "Why do $PPL $V $OBJ $PREP $OBJ?",
    "The best way to $V $OBJ is to $V $OBJ $APOST.",
    "$PS told me that $NS $VS $OBJ $TIME.",
    "When $NS $VS $OBJ, $NP $V $OBJ $APOST.",
    "We $V $OBJ $TIME because $NS $VS $OBJ.",
    "You can $V $OBJ with $OBJ and $OBJ.",
    "Most $NN $V $OBJ, but some of them $V $OBJ instead.",
    "$NS is one of the most $A $NN $PREP $PLACE.",
    "This is why $PPL $APRE $V $OBJ.",
    "Do not forget to $V $OBJ $TIME!",
    "In $PLACE, $PPL $V $OBJ $TIME.",
    "According to $PS, $NP $V $OBJ more often than $NP do.",
    "Have you ever tried to $V $OBJ $PREP $OBJ?",
    "$NS should $V $OBJ, and $NS will $V $OBJ.",
    "One of the $A things about $NS is that it $VS $OBJ.",
    "Many $NN will $V $OBJ if $NS $VS $OBJ.",
    "$CONN it is $EVAL to $V $OBJ and $V $OBJ.",
    "The $N $VS $OBJ, which makes $OBJ $A.",
    "Our $N $APRE $VS $OBJ $TIME, so $PPL can $V $OBJ.",
    "$PPL say that $NP $V $OBJ $APOST.",
    "Nobody knows whether $NS will $V $OBJ $TIME.",
    "Each $N $VS $NUM $NN $PREP $OBJ.",
    "I $V $OBJ $TIME, and it $APRE $VS $OBJ.",
    "With $A $NN and $OBJ, $NS $VS $OBJ $APOST.",
    "Some people prefer to $V $OBJ $PREP $OBJ, while others $V $OBJ.",
    "$NS and $NS $V $OBJ together.",
    "What happens when $NS $VS $OBJ?",
    "As a rule, $NP need $OBJ and $OBJ.",
    "If $NS $VS $OBJ, $PPL will $V $OBJ.",
    "The $A $N is $A, but the $N is even more $A.",
    "It takes about $NUM $UNIT to $V $OBJ.",
    "Last but not least, $PPL $V $OBJ $APOST.",
    "$PPL often ask how to $V $OBJ $PREP $OBJ.",
    "$CONN $PS decided to $V $OBJ $PREP $PLACE.",
    "A $A $N can $V $OBJ $APOST.",
    "That is how $NP $V $OBJ without $OBJ.",
    "$CONN nobody wants to $V $OBJ $TIME.",
    "Try to $V $OBJ $APOST, and then $V $OBJ.",
]
TITLE_TEMPLATES = [
    "How to $V $A $NN",
    "$NUM Ways to $V Your $N",
    "Why $PPL $V $NN",
    "A Guide to $A $NN",
    "The $A $N: What You Need to Know",
    "$A $NN in $PLACE",
    "Notes on $NN and $NN",
    "Everything About $A $NN",
]

# --- other languages -------------------------------------------------------------------------------
# Per language: subjects, verbs (3rd person singular, agreeing with every subject), objects, adverbials,
# connectives, "and". Sentences: [conn] subject verb object [and object] [adverbial].
LANGS: dict[str, dict[str, str]] = {
    "de": {
        "subj": "Der Lehrer|Die Stadt|Das Kind|Meine Mutter|Unser Nachbar|Die Regierung|Der Koch|Die Firma|"
        "Jeder Student|Das kleine Dorf|Der alte Mann|Die junge Frau|Ein Freund von mir|Die Familie|Der Arzt",
        "verb": "kauft|sieht|findet|braucht|liest|schreibt|baut|besucht|liebt|kennt|verkauft|macht|bringt|"
        "öffnet|sucht|zeigt|erklärt|plant",
        "obj": "das Haus|einen Brief|die Zeitung|ein neues Auto|den Garten|viele Bücher|das Brot|die Karte|"
        "einen Kuchen|die Schule|das Fenster|die Rechnung|einen Hund|die Wohnung|das Geschenk|den Bahnhof",
        "adv": "am Morgen|jeden Tag|im Sommer|mit großer Freude|nach der Arbeit|in der Stadt|sehr gern|"
        "am Wochenende|ohne Probleme|vor dem Essen|im Winter|zu Hause",
        "conn": "Heute|Deshalb|Außerdem|Leider|Trotzdem|Danach|Manchmal|Natürlich",
        "and": "und",
        "inverted": "1",
    },
    "fr": {
        "subj": "Le professeur|La ville|L'enfant|Ma mère|Notre voisin|Le gouvernement|Le cuisinier|"
        "L'entreprise|Chaque étudiant|Le petit village|Le vieil homme|La jeune femme|Un ami|La famille|Le médecin",
        "verb": "achète|voit|trouve|cherche|lit|écrit|construit|visite|aime|connaît|vend|prépare|apporte|"
        "ouvre|montre|explique|organise",
        "obj": "la maison|une lettre|le journal|une nouvelle voiture|le jardin|beaucoup de livres|le pain|"
        "la carte|un gâteau|l'école|la fenêtre|la facture|un chien|l'appartement|le cadeau|la gare",
        "adv": "le matin|chaque jour|en été|avec plaisir|après le travail|dans la ville|très souvent|"
        "le week-end|sans problème|avant le dîner|en hiver|à la maison",
        "conn": "Aujourd'hui,|Donc,|En plus,|Malheureusement,|Pourtant,|Ensuite,|Parfois,|Bien sûr,",
        "and": "et",
    },
    "es": {
        "subj": "El profesor|La ciudad|El niño|Mi madre|Nuestro vecino|El gobierno|El cocinero|La empresa|"
        "Cada estudiante|El pequeño pueblo|El anciano|La mujer joven|Un amigo mío|La familia|El médico",
        "verb": "compra|ve|encuentra|busca|lee|escribe|construye|visita|quiere|conoce|vende|prepara|trae|"
        "abre|muestra|explica|organiza",
        "obj": "la casa|una carta|el periódico|un coche nuevo|el jardín|muchos libros|el pan|el mapa|"
        "un pastel|la escuela|la ventana|la factura|un perro|el piso|el regalo|la estación",
        "adv": "por la mañana|cada día|en verano|con mucho gusto|después del trabajo|en la ciudad|"
        "muy a menudo|los fines de semana|sin problemas|antes de la cena|en invierno|en casa",
        "conn": "Hoy|Por eso,|Además,|Desafortunadamente,|Sin embargo,|Después,|A veces,|Por supuesto,",
        "and": "y",
    },
    "it": {
        "subj": "Il professore|La città|Il bambino|Mia madre|Il nostro vicino|Il governo|Il cuoco|"
        "L'azienda|Ogni studente|Il piccolo paese|Il vecchio|La giovane donna|Un mio amico|La famiglia|Il medico",
        "verb": "compra|vede|trova|cerca|legge|scrive|costruisce|visita|ama|conosce|vende|prepara|porta|"
        "apre|mostra|spiega|organizza",
        "obj": "la casa|una lettera|il giornale|una macchina nuova|il giardino|molti libri|il pane|"
        "la mappa|una torta|la scuola|la finestra|la bolletta|un cane|l'appartamento|il regalo|la stazione",
        "adv": "la mattina|ogni giorno|in estate|con piacere|dopo il lavoro|in città|molto spesso|"
        "nel fine settimana|senza problemi|prima di cena|in inverno|a casa",
        "conn": "Oggi|Quindi|Inoltre|Purtroppo|Tuttavia|Poi|A volte|Naturalmente",
        "and": "e",
    },
    "pt": {
        "subj": "O professor|A cidade|O menino|A minha mãe|O nosso vizinho|O governo|O cozinheiro|"
        "A empresa|Cada estudante|A pequena aldeia|O velho|A jovem|Um amigo meu|A família|O médico",
        "verb": "compra|vê|encontra|procura|lê|escreve|constrói|visita|ama|conhece|vende|prepara|traz|"
        "abre|mostra|explica|organiza",
        "obj": "a casa|uma carta|o jornal|um carro novo|o jardim|muitos livros|o pão|o mapa|um bolo|"
        "a escola|a janela|a conta|um cão|o apartamento|o presente|a estação",
        "adv": "de manhã|todos os dias|no verão|com prazer|depois do trabalho|na cidade|muitas vezes|"
        "no fim de semana|sem problemas|antes do jantar|no inverno|em casa",
        "conn": "Hoje|Por isso,|Além disso,|Infelizmente,|No entanto,|Depois,|Às vezes,|Claro que",
        "and": "e",
    },
    "nl": {
        "subj": "De leraar|De stad|Het kind|Mijn moeder|Onze buurman|De regering|De kok|Het bedrijf|"
        "Elke student|Het kleine dorp|De oude man|De jonge vrouw|Een vriend van mij|De familie|De dokter",
        "verb": "koopt|ziet|vindt|zoekt|leest|schrijft|bouwt|bezoekt|kent|verkoopt|maakt|brengt|opent|"
        "toont|legt uit|plant",
        "obj": "het huis|een brief|de krant|een nieuwe auto|de tuin|veel boeken|het brood|de kaart|"
        "een taart|de school|het raam|de rekening|een hond|het appartement|het cadeau|het station",
        "adv": "in de ochtend|elke dag|in de zomer|met plezier|na het werk|in de stad|heel vaak|"
        "in het weekend|zonder problemen|voor het eten|in de winter|thuis",
        "conn": "Vandaag|Daarom|Bovendien|Helaas|Toch|Daarna|Soms|Natuurlijk",
        "and": "en",
        "inverted": "1",
    },
    "ru": {
        "subj": "Учитель|Город|Ребёнок|Моя мать|Наш сосед|Правительство|Повар|Компания|Каждый студент|"
        "Маленькая деревня|Старый человек|Молодая женщина|Мой друг|Семья|Врач",
        "verb": "покупает|видит|находит|ищет|читает|пишет|строит|посещает|любит|знает|продаёт|готовит|"
        "приносит|открывает|показывает|объясняет",
        "obj": "дом|письмо|газету|новую машину|сад|много книг|хлеб|карту|торт|школу|окно|счёт|собаку|"
        "квартиру|подарок|вокзал",
        "adv": "утром|каждый день|летом|с большим удовольствием|после работы|в городе|очень часто|"
        "по выходным|без проблем|перед ужином|зимой|дома",
        "conn": "Сегодня|Поэтому|Кроме того,|К сожалению,|Однако|Потом|Иногда|Конечно,",
        "and": "и",
    },
    "pl": {
        "subj": "Nauczyciel|Miasto|Dziecko|Moja matka|Nasz sąsiad|Rząd|Kucharz|Firma|Każdy student|"
        "Mała wieś|Stary człowiek|Młoda kobieta|Mój przyjaciel|Rodzina|Lekarz",
        "verb": "kupuje|widzi|znajduje|szuka|czyta|pisze|buduje|odwiedza|kocha|zna|sprzedaje|"
        "przygotowuje|przynosi|otwiera|pokazuje|wyjaśnia",
        "obj": "dom|list|gazetę|nowy samochód|ogród|wiele książek|chleb|mapę|ciasto|szkołę|okno|"
        "rachunek|psa|mieszkanie|prezent|dworzec",
        "adv": "rano|codziennie|latem|z przyjemnością|po pracy|w mieście|bardzo często|w weekend|"
        "bez problemu|przed kolacją|zimą|w domu",
        "conn": "Dzisiaj|Dlatego|Poza tym|Niestety|Jednak|Potem|Czasami|Oczywiście",
        "and": "i",
    },
}
# Chinese: no spaces between words; sentences end with 。
ZH = {
    "subj": "老师|这个城市|孩子|我的母亲|我们的邻居|政府|厨师|这家公司|每个学生|小村庄|"
    "那位老人|年轻的女人|我的朋友|这个家庭|医生",
    "verb": "买了|看到|找到|需要|读了|写了|建造|访问|喜欢|认识|卖了|准备|带来|打开|寻找|解释",
    "obj": "一所房子|一封信|报纸|一辆新车|花园|很多书|面包|地图|蛋糕|学校|窗户|账单|一只狗|公寓|礼物|火车站",
    "adv": "早上|每天|在夏天|很高兴地|下班以后|在城市里|经常|周末|没有问题|晚饭前|在冬天|在家里",
    "conn": "今天|所以|而且|可惜|但是|然后|有时候|当然",
}

# --- web boilerplate, spam, lorem, code ------------------------------------------------------------
NAV_LINES = [
    "Home | About | Contact | Blog", "Home > News > Local", "Skip to content", "Skip to main content",
    "Menu", "Search", "Log in", "Sign in | Register", "My Account", "Cart (0)", "Subscribe",
    "Follow us on Facebook", "Follow us on Twitter", "Share on Facebook", "Share on Twitter",
    "Share this:", "Tweet", "Pin it", "Email this page", "Print", "Previous post", "Next post",
    "Related posts", "Recent Posts", "Categories", "Archives", "Tags", "Leave a comment",
    "Posted by admin", "Read more", "Back to top", "Toggle navigation", "Main menu", "Sitemap",
    "Privacy Policy", "Terms of Use", "Terms and Conditions", "Cookie Policy", "Contact us",
    "FAQ", "Help", "Careers", "Advertise with us", "Newsletter", "RSS feed", "Powered by WordPress",
    "Language: English", "View cart", "Checkout", "Wishlist", "Gift cards", "Store locator",
]
COOKIE_LINES = [
    "We use cookies to improve your experience on our website. "
    "By continuing to browse, you agree to our use of cookies.",
    "This website uses cookies to ensure you get the best experience on our website. Learn more",
    "Accept all cookies", "Reject all", "Manage cookie preferences", "Got it!",
    "We and our partners store and access information on your device, such as cookies.",
    "By clicking Accept, you consent to the use of all cookies.",
    "Please enable JavaScript in your browser to view this page.",
    "Your browser does not support JavaScript or it is disabled.",
]
FOOTER_LINES = [
    "Copyright © {year} {site}. All rights reserved.", "© {year} {site}", "All rights reserved.",
    "Designed by {site}", "Powered by {site}", "Follow us:", "Join our mailing list", "Sign up for our newsletter",
    "Phone: 555-0{num}", "Email: info@{site}", "Address: {num} Main Street",
]
SPAM_KEYWORDS = (
    "cheap|buy|best|discount|free shipping|online|sale|deal|offer|price|lowest price|top rated|"
    "casino|bonus|jackpot|slots|poker|bet now|payday loans|fast cash|credit repair|weight loss|diet pills|"
    "replica watches|designer bags|cheap flights|hotel deals|seo services|backlinks|followers|crypto|"
    "bitcoin|forex signals|make money online|work from home|viagra|cialis|pharmacy|no prescription|"
    "outlet|coupon code|promo|clearance|wholesale|free trial|limited offer|click here|order now"
).split("|")
SPAM_PRODUCTS = (
    "shoes|sneakers|handbags|watches|sunglasses|jerseys|phones|laptops|headphones|jackets|dresses|"
    "perfume|supplements|tablets|rings|necklaces|boots|hoodies|wallets|mattresses|hosting|vpn"
).split("|")
SPAM_SHOUTS = [
    "CLICK HERE NOW!!!", "BUY NOW AND SAVE 90%!!!", "$$$ MAKE MONEY FAST $$$", "100% FREE!!!",
    "LIMITED TIME OFFER!!!", "ORDER TODAY!!!", ">>> VISIT OUR STORE <<<", "BEST PRICES GUARANTEED!!!",
    "WIN BIG TODAY!!!", "NO CREDIT CHECK!!!",
]
LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et "
    "dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea "
    "commodo consequat duis aute irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur "
    "excepteur sint occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est "
    "laborum curabitur pretium tincidunt lacus nunc pulvinar sapien ligula porttitor vestibulum mauris"
).split()
SHORT_PAGES = [
    "Page not found", "404 Not Found", "Coming soon.", "Loading...", "Welcome to our website!",
    "This domain is for sale.", "Access denied", "Under construction", "Thank you for your order.",
    "Please log in to continue.", "No results found.", "Service temporarily unavailable.",
    "The page you requested could not be found.", "Redirecting...", "Error 500: internal server error",
]
CODE_IDENTS = (
    "data|item|value|result|count|index|user|config|buffer|node|list|name|total|items|response|request|"
    "options|handler|cache|state|event|target|source|output|input|key|entry|size|offset|payload"
).split("|")
TLDS = ["com", "org", "net", "co.uk", "info", "io", "blog", "com.au", "ca", "de"]
