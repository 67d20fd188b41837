# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True
"""The rule engine's hot path in C: the same Labels as ``classifier.engine``, faster.

Owns: for one item, normalising each field into C arrays (with the offsets back to the
original and a running count of spaces), one pass of a table-driven Aho-Corasick automaton
of its own over them (whole words only), the hit-level tests (case, field, proximity), the
longest-match contests and the Match objects. What is cold or item-level (conditional
terms' item-level rules, relevance, the score, the Labels) is ``classifier.engine``'s own
code, called from here, so the two engines share it.

Must not: differ from ``classifier.engine`` in any output (tests compare the two on the
shipped rules, on random rules and on random text), do I/O, or keep state between calls:
an ``Engine`` is built once per lexicon and is read-only after.

Built by setup.py with Cython when a C compiler is present; ``Classifier`` falls back to
the Python engine when it is not (``NEWSMON_CLASSIFIER_ENGINE`` chooses; see README).
"""

from libc.stdlib cimport calloc, free, realloc
from cpython.object cimport (
    PyObject,
    PyObject_GenericSetAttr,
    PyObject_GenericSetDict,
    PyTypeObject,
)
from cpython.set cimport PySet_New
from cpython.unicode cimport (
    Py_UNICODE_ISALNUM,
    PyUnicode_DATA,
    PyUnicode_KIND,
    PyUnicode_READ,
)

from cpython.ref cimport Py_INCREF

cdef extern from "Python.h":
    ctypedef unsigned char Py_UCS1
    int PyUnicode_1BYTE_KIND
    PyTypeObject PyBaseObject_Type
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member

cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    int T_OBJECT_EX

from functools import partial

from classifier import verdict as _py
from classifier.normalise import _ASCII_MAP, _fold, normalise_term
from core.models import Labels, Match

cdef object _MATCH_FIELDS = frozenset(Match.model_fields)
cdef tuple _NO_ARGS = ()
# The automaton table's most entries by default (4 bytes each: 64 MiB); a bigger lexicon
# is left to the Python engine. (Row offsets, doubled, must fit an int: at most 2**30.)
MAX_TABLE = 1 << 24
# A Match's __dict__ with its keys in order; each Match's is a copy with its own values.
cdef dict _MATCH_TEMPLATE = dict.fromkeys(("kind", "label", "rule", "text", "field", "start", "end"))


cdef Py_ssize_t _slot(model, name) except -1:
    """The offset of a BaseModel slot (a member descriptor), to write it as object.__setattr__
    would on a new object, without the lookup; -1 when it is not one (then we call)."""
    descr = None
    for klass in model.__mro__:
        descr = klass.__dict__.get(name)
        if descr is not None:
            break
    if type(descr).__name__ != "member_descriptor":
        return -1
    if (<PyMemberDescrObject *> descr).d_member.type != T_OBJECT_EX:
        return -1
    return (<PyMemberDescrObject *> descr).d_member.offset


cdef Py_ssize_t _FIELDS_SET = _slot(Match, "__pydantic_fields_set__")
cdef Py_ssize_t _EXTRA = _slot(Match, "__pydantic_extra__")
cdef Py_ssize_t _PRIVATE = _slot(Match, "__pydantic_private__")


cdef inline int _put(object obj, Py_ssize_t offset, str name, object value) except -1:
    """object.__setattr__(obj, name, value) for a slot of a new object (empty: nothing to
    release), written at its offset when known."""
    if offset < 0:
        return PyObject_GenericSetAttr(obj, name, value)
    Py_INCREF(value)
    (<PyObject **> ((<char *> <PyObject *> obj) + offset))[0] = <PyObject *> value
    return 0


_KINDS = ("topic", "official", "country", "organisation")
cdef Py_ssize_t _NEVER = -100
cdef object _LABELS_SET = _py._LABELS_SET
cdef Py_ssize_t _L_FIELDS_SET = _slot(Labels, "__pydantic_fields_set__")
cdef Py_ssize_t _L_EXTRA = _slot(Labels, "__pydantic_extra__")
cdef Py_ssize_t _L_PRIVATE = _slot(Labels, "__pydantic_private__")


cdef class _Found:
    """What an item's hits gave so far: a flag per label (and per topic in the title), the
    title's hits with evidence, the first 30 topic weights in text order."""

    cdef char *seen
    cdef char *title_topic
    cdef Py_ssize_t title_hits
    cdef list weights

    def __cinit__(self, Py_ssize_t nlabels):
        self.seen = <char *> calloc(nlabels + 1, 1)
        self.title_topic = <char *> calloc(nlabels + 1, 1)
        if self.seen == NULL or self.title_topic == NULL:
            raise MemoryError()
        self.weights = []

    def __dealloc__(self):
        free(self.seen)
        free(self.title_topic)


cdef inline bint _holds(Py_ssize_t test, _Found found, int *count):
    """verdict._holds over the flags: a label index, or -1 - kind."""
    if test >= 0:
        return found.seen[test]
    if test >= -4:
        return count[-1 - test] > 0
    return False


cdef dict _template(tuple evidence, str field):
    """The part of a Match's __dict__ that one piece of evidence in one field decides."""
    cdef dict values = _MATCH_TEMPLATE.copy()
    values["kind"] = evidence[0]
    values["label"] = evidence[1]
    values["rule"] = evidence[2]
    values["field"] = field
    return values


cdef inline object _match(dict template, str text, object start, object end):
    """A Match from the engine's own well-typed values, without validation: what
    engine._matches does with object.__new__ and object.__setattr__, in C. ``template``:
    see ``_template``."""
    cdef dict values = template.copy()
    values["text"] = text
    values["start"] = start
    values["end"] = end
    match = PyBaseObject_Type.tp_new(Match, <PyObject *> _NO_ARGS, NULL)
    PyObject_GenericSetDict(match, values, NULL)
    _put(match, _FIELDS_SET, "__pydantic_fields_set__", PySet_New(_MATCH_FIELDS))
    _put(match, _EXTRA, "__pydantic_extra__", None)
    _put(match, _PRIVATE, "__pydantic_private__", None)
    return match

# The normalised form of each ASCII character (normalise's own table), and whether it is a
# letter or digit.
cdef unsigned char _ASCII_NORM[128]
cdef unsigned char _ASCII_ALNUM[128]
for _i in range(128):
    _ASCII_NORM[_i] = _ASCII_MAP[_i]
    _ASCII_ALNUM[_i] = chr(_i).isalnum()


# (Cython starts every C attribute of a cdef class at 0 / NULL, so __dealloc__ may free
# arrays that were never allocated.)
cdef struct Vec:
    # A growable array of Py_ssize_t.
    Py_ssize_t *data
    Py_ssize_t size
    Py_ssize_t cap


cdef inline int _push(Vec *v, Py_ssize_t x) except -1:
    cdef Py_ssize_t *grown
    if v.size == v.cap:
        v.cap = v.cap * 2 if v.cap else 16
        grown = <Py_ssize_t *> realloc(v.data, v.cap * sizeof(Py_ssize_t))
        if grown == NULL:
            raise MemoryError()
        v.data = grown
    v.data[v.size] = x
    v.size += 1
    return 0


cdef class _Scan:
    """One field of one item: its normalised characters as arrays, then its hits."""

    cdef str original
    cdef int code  # 0: title, 1: text
    cdef Py_ssize_t n, cap
    cdef int *cls  # automaton class of each normalised character
    cdef char *alnum  # 1 when it is a letter or digit
    cdef Py_ssize_t *ostart  # original span of each normalised character
    cdef Py_ssize_t *oend
    cdef Py_ssize_t *spaces  # spaces before each position (n + 1 entries)
    # Contenders (whole-word hits of keys that contend), in order of their ends.
    cdef Vec c_start, c_end, c_key
    cdef Vec tested, joins
    cdef char *dead
    # Cues (whole-word hits of lexicon words), one per (hit, lexicon).
    cdef Vec q_lex, q_start, q_end
    cdef Vec won  # indexes of the winning contenders, in text order
    cdef dict alive  # contender index → its live conditional terms (a mask), where tested
    # contender index → (its evidence, their label indexes), where it had live conditional
    # terms (see Engine._decide)
    cdef dict decided

    def __dealloc__(self):
        free(self.cls)
        free(self.alnum)
        free(self.ostart)
        free(self.oend)
        free(self.spaces)
        free(self.dead)
        free(self.c_start.data)
        free(self.c_end.data)
        free(self.c_key.data)
        free(self.tested.data)
        free(self.joins.data)
        free(self.q_lex.data)
        free(self.q_start.data)
        free(self.q_end.data)
        free(self.won.data)

    cdef int reserve(self, Py_ssize_t cap) except -1:
        if cap <= self.cap:
            return 0
        cap = max(cap, 2 * self.cap, 64)
        self.cls = <int *> _grow(self.cls, cap * sizeof(int))
        self.alnum = <char *> _grow(self.alnum, cap * sizeof(char))
        self.ostart = <Py_ssize_t *> _grow(self.ostart, cap * sizeof(Py_ssize_t))
        self.oend = <Py_ssize_t *> _grow(self.oend, cap * sizeof(Py_ssize_t))
        self.spaces = <Py_ssize_t *> _grow(self.spaces, (cap + 1) * sizeof(Py_ssize_t))
        self.cap = cap
        return 0

    cdef bint holds(self, Py_ssize_t lex, Py_ssize_t within, Py_ssize_t place,
                    Py_ssize_t start, Py_ssize_t end):
        """engine._Field.holds: in the field ``place`` (lex < 0), or a word of lexicon
        ``lex`` within ``within`` words of [start, end) and not inside it."""
        cdef Py_ssize_t j, cs, ce
        cdef Py_ssize_t *spaces = self.spaces
        if lex < 0:
            return self.code == place
        for j in range(self.q_lex.size):
            if self.q_lex.data[j] != lex:
                continue
            cs = self.q_start.data[j]
            ce = self.q_end.data[j]
            if cs >= end:
                if spaces[cs + 1] - spaces[end] <= within:
                    return True
            elif ce <= start:
                if spaces[start + 1] - spaces[ce] <= within:
                    return True
            elif cs < start or ce > end:
                return True
        return False

    cdef bint has_cue(self, Py_ssize_t lex):
        cdef Py_ssize_t j
        for j in range(self.q_lex.size):
            if self.q_lex.data[j] == lex:
                return True
        return False


cdef void *_grow(void *p, size_t size) except NULL:
    cdef void *grown = realloc(p, size)
    if grown == NULL:
        raise MemoryError()
    return grown


cdef class Engine:
    """The compiled form of one Lexicon: its automaton as a transition table."""

    cdef object lexicon
    cdef object version
    cdef double title_weight
    # Labels by index: their ids, their kinds (0 topic, 1 official, 2 country,
    # 3 organisation), each kind's indexes in the order of their ids (for sorted lists).
    cdef Py_ssize_t nlabels
    cdef list names
    cdef int *label_kind
    cdef list by_kind  # 4 tuples of indexes
    cdef dict label_index  # (kind, id) → index
    cdef list kev  # per key: the label index of each of its plain evidence
    # Relevance tests (verdict._Test): a label index, -1 - kind for "a label of that
    # kind", or _NEVER.
    cdef tuple rel_all, rel_any, rel_none
    cdef Py_ssize_t ncls, nstates
    cdef int *delta  # nstates × ncls: next state's row offset × 2, + 1 if it has output
    cdef int *term  # the key ending at a state, or -1
    cdef int *link  # the next state down the suffix chain that ends a key, or -1
    cdef int ascii_cls[128]
    cdef dict wide_cls  # class of each non-ASCII character of a key
    # Per key: its length, whole-word edges, whether it contends, whether a term needs a
    # test of the hit, and its lexicons (by index, flattened).
    cdef int *klen
    cdef char *khead
    cdef char *ktail
    cdef char *kcontends
    cdef char *klocal
    cdef char *kconditional  # the key has conditional terms
    cdef int *kname_at  # names of key k: knames[kname_at[k]:kname_at[k + 1]]
    cdef int *knames
    cdef list kplain  # per key: the evidence of its plain terms
    cdef list kcond  # per key: its conditional terms
    cdef list kall  # per key: the mask of all its conditional terms
    cdef char *kstatic  # per key: none of its conditional terms needs phase two (_decide)
    cdef list kcues  # per key: the lexicons (indexes) its item-level rules ask about
    cdef dict static_cache  # (key, mask, cues) → (evidence, its label indexes): see _alone
    cdef list ktemplates  # per key: per field, a _template for each of its plain evidence
    # per key: (term, match_case, all, any, none) for each conditional term, with the
    # lexicons of its hit-level checks as indexes
    cdef list kchecks
    cdef dict lex_index  # lexicon name → index

    def __dealloc__(self):
        free(self.delta)
        free(self.term)
        free(self.link)
        free(self.klen)
        free(self.khead)
        free(self.ktail)
        free(self.kcontends)
        free(self.klocal)
        free(self.kconditional)
        free(self.kstatic)
        free(self.label_kind)
        free(self.kname_at)
        free(self.knames)

    def __init__(self, lexicon, Py_ssize_t max_table=MAX_TABLE):
        """Compile ``lexicon``. MemoryError when its automaton table would have more than
        ``max_table`` entries (``Classifier`` then runs the Python engine)."""
        if not 0 < max_table <= 1 << 30:
            raise ValueError("max_table must be in (0, 2**30]")
        self.lexicon = lexicon
        self.version = lexicon.version
        self.title_weight = lexicon.title_weight
        items = sorted(lexicon.automaton.items())
        self._labels(lexicon, items)
        self._keys(items)
        self._automaton([key for key, _ in items], max_table)

    cdef _labels(self, lexicon, list items):
        """Index every label the rules can give (declared, or given by evidence)."""
        cdef Py_ssize_t i
        pairs = {(kind, label) for kind, labels in lexicon.labels.items() for label in labels}
        for _key, data in items:
            pairs.update((ev[0], ev[1]) for ev in data.plain)
            for term in data.conditional:
                pairs.update((ev[0], ev[1]) for ev in term.evidence)
        ordered = sorted(pairs, key=lambda pair: (_KINDS.index(pair[0]), pair[1]))
        self.nlabels = len(ordered)
        self.names = [label for _kind, label in ordered]
        self.label_index = {pair: i for i, pair in enumerate(ordered)}
        self.label_kind = <int *> _grow(NULL, (self.nlabels + 1) * sizeof(int))
        for i, (kind, _label) in enumerate(ordered):
            self.label_kind[i] = _KINDS.index(kind)
        self.by_kind = [
            tuple(i for i, (kind, _label) in enumerate(ordered) if kind == name)
            for name in _KINDS
        ]
        relevance = lexicon.relevance
        self.rel_all = self._tests(relevance.all)
        self.rel_any = self._tests(relevance.any)
        self.rel_none = self._tests(relevance.none)

    cdef tuple _tests(self, tuple conds):
        """verdict._tests, as label indexes (see ``rel_all``)."""
        out = []
        for cond in conds:
            if cond.kind == "label" and cond.label is not None:
                out.append(self.label_index.get(cond.label, _NEVER))
            elif cond.kind == "kind" and cond.label_kind is not None:
                out.append(-1 - _KINDS.index(cond.label_kind))
            else:
                out.append(_NEVER)
        return tuple(out)

    cdef _keys(self, list items):
        cdef Py_ssize_t k, nkeys = len(items), at = 0
        self.klen = <int *> _grow(NULL, (nkeys + 1) * sizeof(int))
        self.khead = <char *> _grow(NULL, nkeys + 1)
        self.ktail = <char *> _grow(NULL, nkeys + 1)
        self.kcontends = <char *> _grow(NULL, nkeys + 1)
        self.klocal = <char *> _grow(NULL, nkeys + 1)
        self.kconditional = <char *> _grow(NULL, nkeys + 1)
        self.kstatic = <char *> _grow(NULL, nkeys + 1)
        self.kall = []
        self.static_cache = {}
        if nkeys >= 1 << 24:
            raise MemoryError("too many automaton keys for the compiled engine")
        self.kname_at = <int *> _grow(NULL, (nkeys + 1) * sizeof(int))
        self.lex_index = {}
        names_flat = []
        self.kplain = []
        self.ktemplates = []
        self.kev = []
        self.kcond = []
        for k, (key, data) in enumerate(items):
            self.klen[k] = data.length
            self.khead[k] = data.head
            self.ktail[k] = data.tail
            self.kcontends[k] = data.contends
            self.klocal[k] = data.local
            self.kconditional[k] = bool(data.conditional)
            self.kstatic[k] = not any(term.needs_labels for term in data.conditional)
            self.kall.append((1 << len(data.conditional)) - 1)
            self.kname_at[k] = len(names_flat)
            for name in data.names:
                names_flat.append(self.lex_index.setdefault(name, len(self.lex_index)))
            self.kplain.append(data.plain)
            self.kev.append(tuple(self.label_index[(ev[0], ev[1])] for ev in data.plain))
            self.ktemplates.append(
                tuple(tuple(_template(ev, field) for ev in data.plain) for field in ("title", "text"))
            )
            self.kcond.append(data.conditional)
        self.kname_at[nkeys] = len(names_flat)
        self.knames = <int *> _grow(NULL, (len(names_flat) + 1) * sizeof(int))
        for k, index in enumerate(names_flat):
            self.knames[k] = index
        # After the loop: every lexicon that has a word has its index by now.
        self.kcues = [self._item_cues(conditional) for conditional in self.kcond]
        self.kchecks = [
            tuple(
                (
                    term,
                    term.rule.match_case,
                    self._checks(term.local_all),
                    self._checks(term.local_any),
                    self._checks(term.local_none),
                )
                for term in conditional
            )
            for conditional in self.kcond
        ]

    cdef tuple _item_cues(self, tuple conditional):
        """The lexicons (indexes, sorted) that the item-level rules of these terms ask about
        anywhere in the item (near without within). A lexicon without words is never
        there, whatever the item: it is left out."""
        out = set()
        for term in conditional:
            if not term.item_level:
                continue
            rule = term.rule
            for cond in (*rule.all, *rule.any, *rule.none):
                if cond.kind == "near" and cond.within is None and cond.lexicon in self.lex_index:
                    out.add(self.lex_index[cond.lexicon])
        return tuple(sorted(out))

    cdef tuple _checks(self, tuple checks):
        # (lexicon, within, field) → (lexicon index or -1, within, field code). A lexicon
        # that no key is a word of gets an index no cue has.
        out = []
        for lexicon, within, place in checks:
            if lexicon is None:
                out.append((-1, 0, 0 if place == "title" else 1))
            else:
                out.append((self.lex_index.get(lexicon, len(self.lex_index)), within, -1))
        return tuple(out)

    cdef _automaton(self, list keys, Py_ssize_t max_table):
        """The goto/fail automaton of ``keys`` as a full transition table over character
        classes (class 0: a character in no key)."""
        cdef Py_ssize_t s, c, k, nstates, ncls, child, f
        chars = sorted({ch for key in keys for ch in key})
        classes = {ch: i + 1 for i, ch in enumerate(chars)}
        for c in range(128):
            self.ascii_cls[c] = classes.get(chr(c), 0)
        self.wide_cls = {ch: i for ch, i in classes.items() if ord(ch) >= 128}
        ncls = len(chars) + 1
        # The trie.
        goto = [{}]
        ends = [-1]
        for k, key in enumerate(keys):
            s = 0
            for ch in key:
                c = classes[ch]
                nxt = goto[s].get(c)
                if nxt is None:
                    nxt = len(goto)
                    goto[s][c] = nxt
                    goto.append({})
                    ends.append(-1)
                s = nxt
            ends[s] = k
        nstates = len(goto)
        if nstates * ncls > max_table:
            raise MemoryError(
                f"{nstates:,} automaton states × {ncls} character classes is over the table's "
                f"limit of {max_table:,} entries"
            )
        self.ncls = ncls
        self.nstates = nstates
        self.delta = <int *> _grow(NULL, nstates * ncls * sizeof(int))
        self.term = <int *> _grow(NULL, nstates * sizeof(int))
        self.link = <int *> _grow(NULL, nstates * sizeof(int))
        fail = [0] * nstates
        for s in range(nstates):
            self.term[s] = ends[s]
            self.link[s] = -1
        for c in range(ncls):
            self.delta[c] = goto[0].get(c, 0)
        # Breadth first: a state's fail and transitions come from shallower states.
        queue = [child for child in goto[0].values()]
        head = 0
        while head < len(queue):
            s = queue[head]
            head += 1
            f = fail[s]
            self.link[s] = f if self.term[f] >= 0 else self.link[f]
            for c in range(ncls):
                child = goto[s].get(c, -1)
                if child >= 0:
                    fail[child] = self.delta[f * ncls + c]
                    self.delta[s * ncls + c] = child
                    queue.append(child)
                else:
                    self.delta[s * ncls + c] = self.delta[f * ncls + c]
        # Each entry becomes the next state's row offset, doubled, plus 1 when that state
        # ends a key (itself or down its suffix chain): the scan then needs one load per
        # character, and looks at the state only when it has output.
        for s in range(nstates * ncls):
            child = self.delta[s]
            self.delta[s] = ((child * ncls) << 1) | (
                self.term[child] >= 0 or self.link[child] >= 0
            )

    def classify(self, str title, str text):
        """``classifier.engine.Classifier.classify``, compiled."""
        cdef _Scan t = self._scan(title, 0)
        cdef _Scan x = self._scan(text, 1)
        cdef _Found found = _Found(self.nlabels)
        self._decide(t, x)
        matches = []
        self._matches(t, found, matches)
        self._matches(x, found, matches)
        return self._verdict(found, matches)

    cdef object _verdict(self, _Found found, list matches):
        """verdict.Verdict.labels, from the label flags: sorted lists in the labels' order,
        relevance, the score (verdict.score_of), the Labels."""
        cdef Py_ssize_t i, kind
        cdef int count[4]
        cdef Py_ssize_t title_topics = 0
        lists = []
        for kind in range(4):
            out = []
            for i in <tuple> self.by_kind[kind]:
                if found.seen[i]:
                    out.append(self.names[i])
                    if kind == 0 and found.title_topic[i]:
                        title_topics += 1
            count[kind] = len(out)
            lists.append(out)
        relevant = self._relevant(found, count)
        values = {
            "topics": lists[0],
            "officials": lists[1],
            "countries": lists[2],
            "organisations": lists[3],
            "relevant": relevant,
            "score": _py.score_of(
                count[0], count[1] + count[2] + count[3], title_topics, found.weights,
                found.title_hits, self.title_weight, relevant,
            ),
            "matches": matches,
            "rules_version": self.version,
            "story_id": None,
        }
        labels = PyBaseObject_Type.tp_new(Labels, <PyObject *> _NO_ARGS, NULL)
        PyObject_GenericSetDict(labels, values, NULL)
        _put(labels, _L_FIELDS_SET, "__pydantic_fields_set__", PySet_New(_LABELS_SET))
        _put(labels, _L_EXTRA, "__pydantic_extra__", None)
        _put(labels, _L_PRIVATE, "__pydantic_private__", None)
        return labels

    cdef bint _relevant(self, _Found found, int *count):
        """verdict.Verdict.relevant."""
        for test in self.rel_all:
            if not _holds(test, found, count):
                return False
        if self.rel_any:
            for test in self.rel_any:
                if _holds(test, found, count):
                    break
            else:
                return False
        for test in self.rel_none:
            if _holds(test, found, count):
                return False
        return True

    cdef _Scan _scan(self, str original, int code):
        cdef _Scan f = _Scan()
        f.original = original
        f.code = code
        f.alive = {}
        f.decided = {}
        self._normalise(f, original)
        self._hits(f)
        if f.tested.size:
            self._locally_alive(f)
        self._longest_first(f)
        return f

    cdef int _normalise(self, _Scan f, str text) except -1:
        """normalise.normalise(text), into ``f``'s arrays: ASCII characters by table, the
        others through normalise._fold."""
        cdef Py_ssize_t i, n = 0, size = len(text), nspaces = 0
        cdef int kind = PyUnicode_KIND(text)
        cdef const void *data = PyUnicode_DATA(text)
        cdef Py_UCS4 ch, c
        cdef bint space_last = False
        cdef unsigned char *norm = _ASCII_NORM
        cdef int *acls = self.ascii_cls
        cdef unsigned char *aalnum = _ASCII_ALNUM
        f.reserve(size + 1)
        cdef int *cls = f.cls
        cdef char *alnum = f.alnum
        cdef Py_ssize_t *ostart = f.ostart
        cdef Py_ssize_t *oend = f.oend
        cdef Py_ssize_t *spaces = f.spaces
        spaces[0] = 0
        for i in range(size):
            if kind == PyUnicode_1BYTE_KIND:
                ch = (<const Py_UCS1 *> data)[i]
            else:
                ch = PyUnicode_READ(kind, data, i)
            if ch < 128:
                c = norm[ch]
                if c == 32:
                    if space_last:
                        oend[n - 1] = i + 1
                        continue
                    nspaces += 1
                    space_last = True
                else:
                    space_last = False
                if n >= f.cap:  # only after characters that grew (e.g. "ﬁ" → "fi")
                    f.reserve(n + 1 + size - i)
                    cls, alnum, ostart, oend, spaces = f.cls, f.alnum, f.ostart, f.oend, f.spaces
                cls[n] = acls[c]
                alnum[n] = aalnum[c]
                ostart[n] = i
                oend[n] = i + 1
                spaces[n + 1] = nspaces
                n += 1
                continue
            for c in <str> _fold(text[i], True):
                if c == 32:
                    if space_last:
                        oend[n - 1] = i + 1
                        continue
                    nspaces += 1
                    space_last = True
                else:
                    space_last = False
                if n + 1 >= f.cap:
                    f.reserve(n + 2 + size - i)
                    cls, alnum, ostart, oend, spaces = f.cls, f.alnum, f.ostart, f.oend, f.spaces
                if c < 128:
                    cls[n] = acls[c]
                    alnum[n] = aalnum[c]
                else:
                    cls[n] = self.wide_cls.get(c, 0)
                    alnum[n] = Py_UNICODE_ISALNUM(c)
                ostart[n] = i
                oend[n] = i + 1
                spaces[n + 1] = nspaces
                n += 1
        f.n = n
        return 0

    cdef int _hits(self, _Scan f) except -1:
        """The automaton over the field: whole-word hits into contenders and cues (as
        engine._whole_words, longest first among hits that end together)."""
        cdef Py_ssize_t p, n = f.n, start, previous_end = 0, j
        cdef int s = 0, o, k
        cdef int ncls = self.ncls
        cdef int *delta = self.delta
        cdef int *term = self.term
        cdef int *link = self.link
        cdef char *alnum = f.alnum
        cdef int *cls = f.cls
        # spaces[p + 1] counts the spaces before p + 1: a space at p counts, as it should
        # (set while normalising; the first entry is 0).
        cdef int e = 0
        for p in range(n):
            # One dependent load per character (see _automaton); states only on output.
            e = delta[(e >> 1) + cls[p]]
            if not e & 1:
                continue
            s = (e >> 1) // ncls
            o = s if term[s] >= 0 else link[s]
            while o >= 0:
                k = term[o]
                o = link[o]
                start = p - self.klen[k] + 1
                if (self.khead[k] and start > 0 and alnum[start - 1]) or (
                    self.ktail[k] and p + 1 < n and alnum[p + 1]
                ):
                    continue
                for j in range(self.kname_at[k], self.kname_at[k + 1]):
                    _push(&f.q_lex, self.knames[j])
                    _push(&f.q_start, start)
                    _push(&f.q_end, p + 1)
                if self.kcontends[k]:
                    if self.klocal[k]:
                        _push(&f.tested, f.c_key.size)
                    if start < previous_end:
                        _push(&f.joins, f.c_key.size)
                    previous_end = p + 1
                    _push(&f.c_start, start)
                    _push(&f.c_end, p + 1)
                    _push(&f.c_key, k)
        f.dead = <char *> _grow(NULL, f.c_key.size + 1)
        for j in range(f.c_key.size):
            f.dead[j] = 0
        return 0

    cdef int _locally_alive(self, _Scan f) except -1:
        """engine._locally_alive: the tested contenders keep the conditional terms whose
        hit-level tests pass; one left with no terms and no plain evidence dies."""
        cdef Py_ssize_t i, index, start, end
        for i in range(f.tested.size):
            index = f.tested.data[i]
            k = f.c_key.data[index]
            start = f.c_start.data[index]
            end = f.c_end.data[index]
            alive = 0
            bit = 1
            for term, match_case, all_, any_, none in self.kchecks[k]:
                if not term.local or self._passes(
                    f, term, match_case, all_, any_, none, start, end
                ):
                    alive |= bit
                bit <<= 1
            if alive or self.kplain[k]:
                f.alive[index] = alive
            else:
                f.dead[index] = 1
        return 0

    cdef int _passes(self, _Scan f, term, bint match_case, tuple all_, tuple any_, tuple none,
                     Py_ssize_t start, Py_ssize_t end) except -1:
        """engine._Field.passes."""
        if match_case:
            cased = normalise_term(
                f.original[f.ostart[start] : f.oend[end - 1]], fold_case=False
            )
            if cased != term.cased:
                return False
        for lex, within, place in all_:
            if not f.holds(lex, within, place, start, end):
                return False
        for lex, within, place in none:
            if f.holds(lex, within, place, start, end):
                return False
        if not any_:
            return True
        for lex, within, place in any_:
            if f.holds(lex, within, place, start, end):
                return True
        return False

    cdef int _longest_first(self, _Scan f) except -1:
        """engine._groups + engine._longest_first: runs of overlapping contenders hold a
        contest (longest, then earliest, wins); the dead take no part. Fills ``f.won``."""
        cdef Py_ssize_t i, g, ng = 0, index, start, first, after, done = 0
        cdef Py_ssize_t *gfirst
        cdef Py_ssize_t *gafter
        cdef Py_ssize_t *c_start = f.c_start.data
        cdef Py_ssize_t *c_end = f.c_end.data
        if not f.joins.size:
            for i in range(f.c_key.size):
                if not f.dead[i]:
                    _push(&f.won, i)
            return 0
        gfirst = <Py_ssize_t *> _grow(NULL, f.joins.size * sizeof(Py_ssize_t))
        gafter = <Py_ssize_t *> _grow(NULL, f.joins.size * sizeof(Py_ssize_t))
        try:
            for i in range(f.joins.size):
                index = f.joins.data[i]
                start = c_start[index]
                if ng and gafter[ng - 1] == index:
                    gafter[ng - 1] = index + 1
                else:
                    gfirst[ng] = index - 1
                    gafter[ng] = index + 1
                    ng += 1
                while gfirst[ng - 1] and start < c_end[gfirst[ng - 1] - 1]:
                    if ng > 1 and gafter[ng - 2] == gfirst[ng - 1]:
                        gafter[ng - 2] = gafter[ng - 1]  # the earlier run absorbs this one
                        ng -= 1
                    else:
                        gfirst[ng - 1] -= 1
            for g in range(ng):
                first = gfirst[g]
                after = gafter[g]
                for i in range(done, first):
                    if not f.dead[i]:
                        _push(&f.won, i)
                self._contest(f, first, after)
                done = after
            for i in range(done, f.c_key.size):
                if not f.dead[i]:
                    _push(&f.won, i)
        finally:
            free(gfirst)
            free(gafter)
        return 0

    cdef int _contest(self, _Scan f, Py_ssize_t first, Py_ssize_t after) except -1:
        """engine._contest over the live contenders in [first, after): longest first, then
        earliest; one overlapping a winner loses; the winners go to ``f.won`` in text
        order. (Runs are short: insertion sorts.)"""
        cdef Py_ssize_t m = 0, i, j, a, b, nwon = 0, base = f.won.size
        cdef Py_ssize_t *order = <Py_ssize_t *> _grow(NULL, (after - first) * sizeof(Py_ssize_t))
        cdef Py_ssize_t *c_start = f.c_start.data
        cdef Py_ssize_t *c_end = f.c_end.data
        cdef bint clash
        try:
            for i in range(first, after):
                if f.dead[i]:
                    continue
                j = m
                while j > 0 and _before(c_start, c_end, i, order[j - 1]):
                    order[j] = order[j - 1]
                    j -= 1
                order[j] = i
                m += 1
            for a in range(m):
                i = order[a]
                clash = False
                for b in range(base, base + nwon):
                    j = f.won.data[b]
                    if c_end[i] > c_start[j] and c_start[i] < c_end[j]:
                        clash = True
                        break
                if not clash:
                    _push(&f.won, i)
                    nwon += 1
            # The winners in text order (insertion sort by start; spans differ).
            for a in range(base + 1, base + nwon):
                i = f.won.data[a]
                b = a
                while b > base and c_start[f.won.data[b - 1]] > c_start[i]:
                    f.won.data[b] = f.won.data[b - 1]
                    b -= 1
                f.won.data[b] = i
        finally:
            free(order)
        return 0

    cdef inline object _live(self, _Scan f, Py_ssize_t i):
        """The mask of the live conditional terms of winning contender ``i`` (bit j:
        ``kcond[k][j]``), or None when it has none."""
        cdef int k = f.c_key.data[i]
        if not self.kconditional[k]:
            return None
        mask = f.alive.get(i)
        if mask is None:
            return self.kall[k]
        return mask or None

    cdef int _decide(self, _Scan t, _Scan x) except -1:
        """engine._decide: the evidence of the winning hits with live conditional terms,
        into each field's ``decided``.

        A hit whose live terms do not look at other labels (``kstatic``: none of them is
        decided in phase two) gets what verdict.decide_terms gives it alone: that depends
        only on its key, its live terms and which of the lexicons its item-level rules ask
        about occur in the item (``kcues``), so it is cached on those. Its labels then count
        as present for the others' phase two, as in decide_terms. The others go to
        decide_terms together.
        """
        cdef _Scan f
        cdef Py_ssize_t a, i
        cdef int k
        at = None
        pending = None
        for f in (t, x):
            for a in range(f.won.size):
                i = f.won.data[a]
                mask = self._live(f, i)
                if mask is None:
                    continue
                k = f.c_key.data[i]
                if self.kstatic[k]:
                    f.decided[i] = self._alone(t, x, k, mask)
                    continue
                if pending is None:
                    at = []
                    pending = []
                at.append((f.decided, i))
                pending.append((self.kplain[k], self._terms(k, mask)))
        if pending is None:
            return 0
        decided = _py.decide_terms(
            pending, partial(_plain_present, self, t, x), partial(_has_cue, self, t, x)
        )
        for (into, i), evidence in zip(at, decided):
            (<dict> into)[i] = (evidence, self._indexes(evidence))
        return 0

    cdef tuple _terms(self, int k, object mask):
        cdef tuple terms = self.kcond[k]
        if mask == self.kall[k]:
            return terms
        return tuple([term for j, term in enumerate(terms) if (mask >> j) & 1])

    cdef tuple _alone(self, _Scan t, _Scan x, int k, object mask):
        """(evidence, its label indexes) of a kstatic hit with these live terms (see
        _decide), from the cache or decide_terms."""
        cdef Py_ssize_t j = 0, lex
        cues = 0
        for lex in <tuple> self.kcues[k]:
            if t.has_cue(lex) or x.has_cue(lex):
                cues |= 1 << j
            j += 1
        key = (k, mask, cues)
        known = self.static_cache.get(key)
        if known is None:
            (evidence,) = _py.decide_terms(
                [(self.kplain[k], self._terms(k, mask))],
                _no_labels,
                partial(_has_cue, self, t, x),
            )
            known = (evidence, self._indexes(evidence))
            self.static_cache[key] = known
        return known

    cdef set plain_present(self, _Scan t, _Scan x):
        """The labels of the winning hits that do not go to decide_terms: those without
        live conditional terms and the ``kstatic`` ones (already decided)."""
        cdef _Scan f
        cdef Py_ssize_t a, i
        present = set()
        for f in (t, x):
            for a in range(f.won.size):
                i = f.won.data[a]
                known = f.decided.get(i)
                if known is None:
                    if self._live(f, i) is not None:
                        continue  # pending: decide_terms adds its labels itself
                    evidence = self.kplain[f.c_key.data[i]]
                else:
                    evidence = (<tuple> known)[0]
                for ev in <tuple> evidence:
                    present.add((ev[0], ev[1]))
        return present

    cdef int _matches(self, _Scan f, _Found found, list matches) except -1:
        """engine._matches: one Match per piece of evidence of the field's winning hits;
        notes their labels, the title's, and the first topic weights in ``found``."""
        cdef Py_ssize_t a, i, j, k, li, o_start, o_end
        cdef object start, end
        cdef str text, name = "title" if f.code == 0 else "text"
        cdef str original = f.original
        cdef bint title = f.code == 0
        decided = f.decided
        for a in range(f.won.size):
            i = f.won.data[a]
            known = decided.get(i) if decided else None
            if known is None:
                k = f.c_key.data[i]
                evidence = self.kplain[k]
                lis = self.kev[k]
                templates = self.ktemplates[k][f.code]
            else:
                evidence, lis = <tuple> known
                templates = None
            if not evidence:
                continue
            if title:
                found.title_hits += 1
            o_start = f.ostart[f.c_start.data[i]]
            o_end = f.oend[f.c_end.data[i] - 1]
            text = original[o_start:o_end]
            start = o_start
            end = o_end
            for j in range(len(<tuple> evidence)):
                ev = (<tuple> evidence)[j]
                li = (<tuple> lis)[j]
                found.seen[li] = 1
                if self.label_kind[li] == 0:
                    if title:
                        found.title_topic[li] = 1
                    if len(found.weights) < 30:
                        found.weights.append((<tuple> ev)[3])
                template = (<tuple> templates)[j] if templates is not None else _template(ev, name)
                matches.append(_match(template, text, start, end))
        return 0

    cdef tuple _indexes(self, tuple evidence):
        return tuple([self.label_index[(ev[0], ev[1])] for ev in evidence])


cdef inline bint _before(Py_ssize_t *c_start, Py_ssize_t *c_end, Py_ssize_t i, Py_ssize_t j):
    """Contender i comes before j in a contest: longer, or as long and earlier."""
    cdef Py_ssize_t li = c_end[i] - c_start[i], lj = c_end[j] - c_start[j]
    if li != lj:
        return li > lj
    return c_start[i] < c_start[j]


def _plain_present(Engine engine, _Scan t, _Scan x):
    return engine.plain_present(t, x)


def _no_labels():
    raise AssertionError("a kstatic hit's terms do not look at other labels")


def _has_cue(Engine engine, _Scan t, _Scan x, lexicon):
    index = engine.lex_index.get(lexicon)
    return index is not None and (t.has_cue(index) or x.has_cue(index))
