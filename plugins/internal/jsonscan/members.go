package jsonscan

// Members validates data as one JSON document whose top level is an
// object and calls fn for each member in order with its key (raw: without
// the quotes, escapes not decoded; escaped says whether it has any) and
// its value (a view into data). fn returning false stops the walk, and
// the rest of the document is then not validated. Errors are
// ErrNotObject or a *SyntaxError.
func Members(data []byte, fn func(key []byte, escaped bool, value []byte) bool) error {
	s := jsonScanner{data: data}
	s.space()
	if s.pos >= len(data) {
		return s.fail("empty document")
	}
	if data[s.pos] != '{' {
		if err := s.value(0); err != nil {
			return err
		}
		if err := s.end(); err != nil {
			return err
		}
		return ErrNotObject
	}
	s.pos++
	s.space()
	if s.peek() == '}' {
		s.pos++
		return s.end()
	}
	for {
		s.space()
		ks := s.pos
		escaped, err := s.str()
		if err != nil {
			return err
		}
		key := data[ks+1 : s.pos-1]
		if err := s.colon(); err != nil {
			return err
		}
		vs := s.pos
		if err := s.value(1); err != nil {
			return err
		}
		if !fn(key, escaped, data[vs:s.pos]) {
			return nil
		}
		if more, err := s.more('}', "an object"); err != nil {
			return err
		} else if !more {
			return s.end()
		}
	}
}
