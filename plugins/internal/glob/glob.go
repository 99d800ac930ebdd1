// Package glob matches model-name patterns where '*' matches any run of
// bytes, '/' included (path.Match would stop at '/', and model names such
// as "meta-llama/Llama-3.1-8B" contain one). It builds for the host and
// for wasip1 guests.
package glob

// Match matches s against pattern, where '*' matches any run of bytes
// (including none) and every other byte matches itself.
func Match(pattern, s string) bool {
	// Iterative matching with one backtrack point: linear in practice and
	// never exponential.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
