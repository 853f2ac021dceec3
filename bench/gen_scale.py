#!/usr/bin/env python3
"""gen_scale.py OUT_DIR N_CHUNKS [N_QUERIES] — a deterministic synthetic
corpus for the scale benchmarks (`make bench`): mixed Chinese/English
Markdown files of ~100 KB whose words follow a Zipf law over a realistic
vocabulary (30,000 English-like words, 20,000 Chinese words), grouped in
topics so that documents about one topic share rarer words (which gives the
vector side real neighbours). Writes OUT_DIR/docs/*.md (about N_CHUNKS
chunks at zhiku's default chunk size of 700 characters) and
OUT_DIR/queries.txt: one query per line, 2-6 content words taken from one
sentence of a random document, as a user would type them.

The tiny fixed vocabulary of gen_corpus.py (ingestion benchmark) puts every
word in every chunk, which no real corpus does; search benchmarks use this."""
import itertools, os, random, sys

out, nchunks = sys.argv[1], int(sys.argv[2])
nqueries = int(sys.argv[3]) if len(sys.argv) > 3 else 200
rng = random.Random(20261122)

FUNC_EN = ("the of and to in is that for it as with was on be by this are from or an which at have "
           "not we you they can will all has but one more when if their there also may should").split()
syl = ("ba be bi bo bu ca ce ci co cu da de di do du fa fe fi fo fu ga ge gi go gu ka ke ki ko ku "
       "la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su "
       "ta te ti to tu va ve vi vo vu za ze zi zo zu tra tre pro pre con com ex in str ment tion").split()
en, seen = [], set(FUNC_EN)
while len(en) < 30000:
    w = "".join(rng.choice(syl) for _ in range(rng.choice((2, 2, 3, 3, 4))))
    if w not in seen:
        seen.add(w)
        en.append(w)
# 3,500 common CJK ideographs stand in for the real character set; words of
# two or three characters, the most frequent first
han = [chr(0x4E00 + i) for i in range(0, 3500 * 5, 5)]
FUNC_ZH = list("的是在了和有也就都而及与对")
zh, seen = [], set()
while len(zh) < 20000:
    w = "".join(rng.choice(han) for _ in range(rng.choice((2, 2, 2, 3))))
    if w not in seen:
        seen.add(w)
        zh.append(w)

def zipf_cum(n, s=1.0, q=2.7):
    return list(itertools.accumulate(1.0 / (r + q) ** s for r in range(n)))

en_cum, zh_cum = zipf_cum(len(en)), zipf_cum(len(zh))
NTOPICS = 300
topics = [(rng.sample(en[2000:], 150), rng.sample(zh[1500:], 150)) for _ in range(NTOPICS)]

def words(lang, topic, n):
    vocab, cum, func = (en, en_cum, FUNC_EN) if lang == "en" else (zh, zh_cum, FUNC_ZH)
    tw = topics[topic][0 if lang == "en" else 1]
    out = []
    for w in rng.choices(vocab, cum_weights=cum, k=n):
        r = rng.random()
        if r < 0.25:
            w = rng.choice(tw)
        elif r < 0.45:
            w = rng.choice(func)
        out.append(w)
    return out

def sentence(topic):
    if rng.random() < 0.5:
        return "".join(words("zh", topic, rng.randint(6, 16))) + rng.choice("。；！？")
    return " ".join(words("en", topic, rng.randint(8, 20))).capitalize() + "."

docs = os.path.join(out, "docs")
os.makedirs(docs, exist_ok=True)
target = nchunks * 630            # characters; chunks overlap by ~80
nfiles = max(1, round(target / 34000))   # ~100 KB of mixed UTF-8 per file
sample = []                       # (file, sentence) pairs for queries
for i in range(nfiles):
    topic = rng.randrange(NTOPICS)
    parts, size, h = [f"# 文档 {i} Document {i}\n\n"], 0, 0
    while size < target // nfiles:
        if rng.random() < 0.08:
            h += 1
            parts.append(f"## 第{h}节 Section {h}\n\n")
        p = " ".join(sentence(topic) for _ in range(rng.randint(3, 8)))
        if rng.random() < 0.02:
            sample.append(p.split(" ")[0] if p[0] >= "\u4e00" else p)
        parts.append(p + "\n\n")
        size += len(p)
    with open(os.path.join(docs, f"doc{i:06d}.md"), "w", encoding="utf-8") as f:
        f.write("".join(parts))

stop = set(FUNC_EN) | set(FUNC_ZH)
with open(os.path.join(out, "queries.txt"), "w", encoding="utf-8") as f:
    for _ in range(nqueries):
        p = rng.choice(sample)
        if p[0] >= "\u4e00":     # Chinese: a run of 2-4 words from the sentence
            s = p[: rng.randint(4, 10)]
            f.write(s.strip("。；！？") + "\n")
        else:
            ws = [w.strip(".").lower() for w in p.split()[:20] if w.isascii()]
            ws = [w for w in ws if w and w not in stop]
            k = min(len(ws), rng.randint(2, 6))
            f.write(" ".join(rng.sample(ws, k) if k else ws[:1]) + "\n")
print(f"gen_scale: {nfiles} files in {docs}, {nqueries} queries")
