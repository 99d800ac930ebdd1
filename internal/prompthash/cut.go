package prompthash

import "bytes"

// Duplicate member names. RFC 8259 §4 leaves an object with two members
// of one name to the parser, and the engines behind Sluice act on the
// last one, when they accept the body at all: Python's json.loads (vLLM
// and SGLang: FastAPI, then pydantic) keeps the last; Go's encoding/json
// decodes the last over the first (a string: the last; an object: merged
// member by member); serde_json into a #[derive(Deserialize)] struct
// (TGI's router) rejects the body with "duplicate field", and into a
// serde_json::Value keeps the last. The raw bytes hold both, so hashing
// them would route on a prefix the engine never reads, and a client could
// steer the router with a decoy (a popular system prompt as the first
// "content", its own as the last). cut finds where that begins.

// Bounds of what cut remembers: containers open inside the top-level
// object, and the keys of the objects open at once (a message object
// holds 2 to 5). Past either, cut stops vouching for the bytes.
const (
	cutDepth = 32
	cutKeys  = 64
)

// cut scans text — a prompt's value, then the rest of the top-level
// object to its closing '}' — and returns how many of its leading bytes
// an engine reads as they stand: all of them, or up to the first member
// of an object that a later member of the same name overrides (from its
// key: the bytes before it are those of the body without it). Where cut
// cannot vouch, it stops there too: an object with an escaped key (which
// may spell an earlier one) from the object's '{' (for the top-level
// object, from its first member after the prompt), nesting deeper than
// cutDepth or more than cutKeys keys open at once from there. Members
// after the prompt are checked the same way (they end the text). later
// reports a top-level member after the prompt named "model", "messages"
// or "prompt", or with an escaped key (which may spell one): it overrides
// what Quick read, and the caller must find the last one (the cacheaware
// plugin's validating scanner does).
//
// cut reads text once, strings with bytes.IndexByte, and allocates
// nothing (its tables live on the stack). It does not validate: for
// invalid JSON the result is some prefix, and the engine rejects the body.
func cut(text []byte) (n int, later bool) {
	var (
		open [cutDepth]int   // per level: the offset of its '{', or -1 for a '['
		base [cutDepth]int   // per object level: its first key in keys
		keys [cutKeys][2]int // keys of open objects: text[k[0]:k[1]], quotes included
		nk   int             // keys in use
		lvl  int             // containers open; level 0 is the top-level object
		tail bool            // a key of level 0 was seen (open[0] is the first)
	)
	n = len(text)
	for i := 0; i < len(text); {
		switch text[i] {
		case '"':
			end, escaped, long := stringEnd(text, i)
			if end < 0 {
				return n, later // unterminated: invalid
			}
			if j := skipSpace(text, end); j == len(text) || text[j] != ':' {
				i = end // a value
				continue
			}
			key := text[i+1 : end-1]
			escaped = escaped || long && bytes.IndexByte(key, '\\') >= 0
			if lvl == 0 && !tail {
				open[0], tail = i, true // the members after the prompt start here
			}
			switch {
			case lvl == 0 && escaped:
				later, n = true, min(n, open[0])
			case lvl == 0 && isPromptKey(key):
				later = true
			case lvl >= cutDepth || open[lvl] == -1:
				// past cutDepth (already cut), or a key in an array (invalid)
			case escaped:
				n = min(n, open[lvl])
			default:
				if first := findKey(text, keys[base[lvl]:nk], key); first >= 0 {
					n = min(n, first)
				} else if nk < cutKeys {
					keys[nk] = [2]int{i, end}
					nk++
				} else {
					n = min(n, i)
				}
			}
			i = end
			continue
		case '{', '[':
			lvl++
			if lvl >= cutDepth {
				n = min(n, i)
			} else if text[i] == '{' {
				open[lvl], base[lvl] = i, nk
			} else {
				open[lvl] = -1
			}
		case '}', ']':
			if lvl == 0 {
				return n, later // the top-level object's end
			}
			if lvl < cutDepth && open[lvl] >= 0 {
				nk = base[lvl]
			}
			lvl--
		}
		i++
	}
	return n, later
}

// isPromptKey reports whether a raw top-level key is one Quick reads.
func isPromptKey(key []byte) bool {
	k := string(key)
	return k == "model" || k == "messages" || k == "prompt"
}

// findKey returns the offset of the key in seen (spans of text, quotes
// included) equal to key (without quotes), or -1.
func findKey(text []byte, seen [][2]int, key []byte) int {
	for _, k := range seen {
		if string(text[k[0]+1:k[1]-1]) == string(key) {
			return k[0]
		}
	}
	return -1
}

// stringEnd returns the index after the string that opens at text[i], or
// -1 when it does not end. Its first shortScan bytes (a key, a short
// value) are read byte by byte, which also tells whether they hold a
// backslash (escaped); past them, where escaped says nothing (long is
// true), its quotes are found with bytes.IndexByte, and a quote ends it
// when an even number of backslashes precedes it (they escape each other).
func stringEnd(text []byte, i int) (end int, escaped, long bool) {
	j := i + 1
	for short := min(len(text), j+shortScan); j < short; j++ {
		switch text[j] {
		case '"':
			return j + 1, escaped, false
		case '\\':
			escaped = true
			j++
		}
	}
	for ; j < len(text); j++ {
		q := bytes.IndexByte(text[j:], '"')
		if q < 0 {
			break
		}
		j += q
		bs := 0
		for k := j - 1; k > i && text[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return j + 1, escaped, true
		}
	}
	return -1, false, false
}

// shortScan is how many bytes of a string stringEnd reads one by one
// before it calls bytes.IndexByte: most keys and many values fit, and
// for them the call would cost more than the loop.
const shortScan = 24

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}
