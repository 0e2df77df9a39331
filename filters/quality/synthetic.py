"""Seeded generators of clean prose and crawl-like junk, for the offline default classifier.

These are *not* real data. ``clean_prose`` writes grammatical multi-paragraph
expository text from templates over a topic vocabulary; ``crawl_junk`` writes what
a raw web crawl is full of (navigation bars, cookie and login banners, product
listings with prices, keyword stuffing, comment spam, link farms), sometimes around a
sentence or two of prose, as real boilerplate-heavy pages are. A classifier trained
to separate them learns "reads like edited prose" versus "reads like page chrome";
it is a stand-in that needs no download, not a substitute for DCLM's classifier.
"""

from __future__ import annotations

import random

_TOPICS = {
    "science": (
        [
            "the cell",
            "a protein",
            "the enzyme",
            "light",
            "the electron",
            "a gene",
            "the experiment",
            "gravity",
            "the molecule",
            "a neuron",
            "the telescope",
            "the fossil record",
            "the immune system",
            "a catalyst",
        ],
        [
            "energy",
            "the membrane",
            "its structure",
            "the signal",
            "the reaction rate",
            "the results",
            "the surrounding tissue",
            "the orbit",
            "a stable state",
            "the measured spectrum",
        ],
    ),
    "history": (
        [
            "the empire",
            "the treaty",
            "the revolution",
            "the council",
            "the merchants",
            "the dynasty",
            "the archive",
            "the colonial government",
            "the guild",
            "the reform movement",
            "the chronicle",
        ],
        [
            "trade routes",
            "the old capital",
            "its neighbours",
            "public opinion",
            "the tax system",
            "the borders",
            "later historians",
            "the balance of power",
            "the rural population",
        ],
    ),
    "geography": (
        [
            "the river",
            "the glacier",
            "the plateau",
            "the delta",
            "the monsoon",
            "the coastline",
            "the basin",
            "the volcano",
            "the desert",
            "the mountain range",
            "the estuary",
        ],
        [
            "the valley floor",
            "the climate",
            "local farming",
            "the sediment",
            "the water table",
            "the surrounding plains",
            "rainfall patterns",
            "the ecosystem",
            "the shoreline",
        ],
    ),
    "technology": (
        [
            "the compiler",
            "the algorithm",
            "the network",
            "the database",
            "the processor",
            "the protocol",
            "the operating system",
            "the cache",
            "the scheduler",
            "the encryption scheme",
            "the file system",
        ],
        [
            "memory usage",
            "the latency",
            "each request",
            "the data structure",
            "concurrent access",
            "the input size",
            "the error rate",
            "the throughput",
            "older hardware",
        ],
    ),
    "cooking": (
        [
            "the dough",
            "the sauce",
            "the broth",
            "slow roasting",
            "fermentation",
            "the marinade",
            "the oven",
            "a cast iron pan",
            "the caramel",
            "fresh herbs",
        ],
        [
            "the flavour",
            "the texture",
            "the crust",
            "the aroma",
            "the final dish",
            "the sugars",
            "the moisture",
            "the acidity",
            "the colour",
        ],
    ),
}
_VERBS = [
    "changes",
    "shapes",
    "reduces",
    "increases",
    "explains",
    "depends on",
    "influences",
    "protects",
    "transforms",
    "reveals",
    "limits",
    "supports",
    "determines",
    "affects",
    "controls",
]
_ADVERBS = [
    "gradually",
    "in most cases",
    "over time",
    "under normal conditions",
    "in practice",
    "for several reasons",
    "to a surprising degree",
    "as a rule",
    "in the long run",
]
_CONNECTIVES = [
    "However,",
    "As a result,",
    "In addition,",
    "For example,",
    "By contrast,",
    "Consequently,",
    "At the same time,",
    "In other words,",
    "Historically,",
    "Not surprisingly,",
]
_CLAUSES = [
    "which is why careful observation matters",
    "although the details remain debated",
    "because small differences accumulate",
    "while earlier accounts overlooked this",
    "as several studies have shown",
    "so the effect is easy to underestimate",
    "even when conditions vary widely",
    "which makes the outcome hard to predict",
]

_NAV = [
    "Home",
    "About Us",
    "Contact",
    "Blog",
    "Shop",
    "Login",
    "Register",
    "FAQ",
    "Privacy Policy",
    "Terms of Service",
    "Sitemap",
    "Careers",
    "Support",
    "My Account",
    "Cart (0)",
    "Search",
    "Menu",
]
_BANNERS = [
    "We use cookies to improve your experience. Accept all cookies?",
    "Sign up for our newsletter!",
    "Click here to subscribe",
    "You must be logged in to post a comment.",
    "Share on Facebook",
    "Tweet this",
    "Pin it",
    "Copyright 2019 All rights reserved.",
    "Powered by WordPress",
    "Skip to main content",
    "Loading...",
    "JavaScript is disabled in your browser.",
    "Free shipping on orders over $50!!!",
    "Limited time offer - BUY NOW",
    "Read more >>",
    "Posted by admin",
    "Leave a reply",
    "Previous post",
    "Next post",
    "Related posts:",
]
_PRODUCTS = [
    "cheap shoes",
    "best vpn",
    "replica watches",
    "casino bonus",
    "weight loss pills",
    "car insurance",
    "phone case",
    "led lights",
    "cheap flights",
    "seo services",
    "payday loans",
    "wedding dress",
]
_SPAM = [
    "great post thanks for sharing",
    "nice article!!",
    "visit my site for more info",
    "lol",
    "first!",
    "pls reply",
    "awesome info keep it up",
    "check out my profile",
    "this is so true",
]


def _sentence(rng: random.Random, topic: str) -> str:
    subjects, objects = _TOPICS[topic]
    s = f"{rng.choice(subjects)} {rng.choice(_ADVERBS)} {rng.choice(_VERBS)} {rng.choice(objects)}"
    if rng.random() < 0.5:
        s += f", {rng.choice(_CLAUSES)}"
    if rng.random() < 0.3:
        s = f"{rng.choice(_CONNECTIVES)} {s}"
    return s[0].upper() + s[1:] + "."


def _paragraph(rng: random.Random, topic: str, n_sentences: int) -> str:
    return " ".join(_sentence(rng, topic) for _ in range(n_sentences))


def clean_prose(n: int, seed: int = 0) -> list[str]:
    """``n`` documents of 2-5 paragraphs of template prose on one topic each."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        topic = rng.choice(sorted(_TOPICS))
        paras = [_paragraph(rng, topic, rng.randint(3, 7)) for _ in range(rng.randint(2, 5))]
        docs.append("\n\n".join(paras))
    return docs


def crawl_junk(n: int, seed: int = 0) -> list[str]:
    """``n`` crawl-like pages: menus, banners, listings, spam, link farms."""
    rng = random.Random(seed + 7919)
    docs = []
    for _ in range(n):
        lines: list[str] = []
        lines.append(" | ".join(rng.sample(_NAV, rng.randint(4, 9))))
        for _ in range(rng.randint(3, 12)):
            kind = rng.random()
            if kind < 0.3:
                lines.append(rng.choice(_BANNERS))
            elif kind < 0.5:
                p = rng.choice(_PRODUCTS)
                lines.append(f"{p.title()} - ${rng.randint(1, 999)}.{rng.randint(0, 99):02d} Add to cart")
            elif kind < 0.65:
                p = rng.choice(_PRODUCTS)
                lines.append(" ".join([p, f"{p} online", f"buy {p}", f"{p} discount", f"best {p} 2019"]))
            elif kind < 0.8:
                user = f"user{rng.randint(1, 9999)}"
                lines.append(
                    f"{user} on {rng.randint(1, 28)}/{rng.randint(1, 12)}/20{rng.randint(10, 23)}: {rng.choice(_SPAM)}"
                )
            elif kind < 0.9:
                lines.append(
                    " ".join(
                        f"http://www.{rng.choice(_PRODUCTS).replace(' ', '-')}{rng.randint(1, 99)}.com"
                        for _ in range(rng.randint(1, 4))
                    )
                )
            else:
                lines.append(_sentence(rng, rng.choice(sorted(_TOPICS))))
        lines.append(rng.choice(_BANNERS))
        docs.append("\n".join(lines))
    return docs
