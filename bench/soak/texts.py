"""The texts the clients store and search for: real-looking sentences combined from these parts, a
few thousand distinct texts, so the embedder and the index see language rather than noise."""

import random

SUBJECTS = (
    "The city council",
    "Our support team",
    "The research group",
    "A local bakery",
    "The quarterly report",
    "The new firmware",
    "The orchestra",
    "A small vineyard",
    "The hospital board",
    "The football club",
    "Engineers at the plant",
    "The school library",
)
VERBS = ("approved", "described", "postponed", "announced", "questioned", "reviewed", "celebrated", "measured")
OBJECTS = (
    "a plan to expand the bicycle lanes",
    "the rising cost of electricity",
    "a recipe for sourdough bread with rye flour",
    "the results of the clinical trial",
    "a fix for the battery drain on older phones",
    "the programme for the winter concert season",
    "the effect of frost on the grape harvest",
    "new visiting hours for the children's ward",
    "the transfer of the team's young striker",
    "a backlog of unanswered customer emails",
    "the reading list for the summer holidays",
    "safety checks on the cooling pumps",
)
CODAS = (
    "after a long public debate",
    "in a meeting on Tuesday",
    "despite strong objections",
    "ahead of the holiday season",
    "for the second year running",
    "with little fanfare",
    "following complaints from residents",
    "in front of a packed hall",
)


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CODAS)}."
