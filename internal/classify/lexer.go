package classify

import "strings"

// tokenKind is the lexical class of a token.
type tokenKind uint8

const (
	tokEOF          tokenKind = iota
	tokWord                   // unquoted identifier or keyword
	tokQuotedIdent            // "identifier"; text is what lies between the quotes
	tokUnicodeIdent           // U&"identifier"; text is what lies between the quotes
	tokString                 // '...', E'...', B'...', X'...', N'...', U&'...', $tag$...$tag$
	tokNumber                 // 42, 3.14, 1e-5, 0x1F
	tokParam                  // $1
	tokPunct                  // one byte of punctuation or of an operator
)

// token is one lexical unit; text is a substring of the source, so tokens
// never allocate.
type token struct {
	kind tokenKind
	text string
}

// is reports whether t is the unquoted keyword kw (lower case), ignoring case.
func (t token) is(kw string) bool {
	return t.kind == tokWord && equalFold(t.text, kw)
}

// isPunct reports whether t is the punctuation byte c.
func (t token) isPunct(c byte) bool {
	return t.kind == tokPunct && t.text[0] == c
}

// lexer splits SQL text into tokens the way PostgreSQL's scanner does
// (standard_conforming_strings on), in one pass. Blanks and comments are
// skipped; routing hints found in comments are remembered on the way.
type lexer struct {
	src  string
	pos  int
	hint Hint
	// unterminated is set when a string, quoted identifier or block comment
	// runs to the end of the text.
	unterminated string
}

// next returns the next token, or a tokEOF token at the end of the text.
func (lx *lexer) next() token {
	src := lx.src
	start := lx.pos
	// Blanks come first: a separate call for them would cost more than the
	// common case of a single space.
	for start < len(src) && byteClass[src[start]]&classBlank != 0 {
		start++
	}
	if start < len(src) && byteClass[src[start]]&classCommentStart != 0 {
		lx.pos = start
		lx.skipBlanksAndComments()
		start = lx.pos
	}
	if start >= len(src) {
		lx.pos = start
		return token{kind: tokEOF}
	}
	c := src[start]
	if byteClass[c]&classIdentStart != 0 {
		if byteClass[c]&classQuotePrefix != 0 {
			if t, ok := lx.prefixedQuote(start); ok {
				return t
			}
		}
		end := start + 1
		for end < len(src) && byteClass[src[end]]&classIdentCont != 0 {
			end++
		}
		lx.pos = end
		return token{kind: tokWord, text: src[start:end]}
	}
	switch {
	case c == '\'':
		return lx.quoted(tokString, start+1, '\'', false)
	case c == '"':
		return lx.quoted(tokQuotedIdent, start+1, '"', false)
	case isDigit(c) || (c == '.' && isDigit(peek(src, start+1))):
		lx.pos = numberEnd(src, start)
		return token{kind: tokNumber, text: src[start:lx.pos]}
	case c == '$':
		return lx.dollar(start)
	}
	lx.pos = start + 1
	return token{kind: tokPunct, text: src[start : start+1]}
}

// prefixedQuote lexes a literal introduced by letters: E'...' (with
// backslash escapes), B'...', X'...', N'...', U&'...' and U&"...". ok is
// false when the letter at start begins a plain word.
func (lx *lexer) prefixedQuote(start int) (t token, ok bool) {
	src := lx.src
	c, next := toLower(src[start]), peek(src, start+1)
	switch {
	case next == '\'' && c == 'e':
		return lx.quoted(tokString, start+2, '\'', true), true
	case next == '\'' && c != 'u':
		return lx.quoted(tokString, start+2, '\'', false), true
	case next == '&' && c == 'u' && peek(src, start+2) == '\'':
		return lx.quoted(tokString, start+3, '\'', false), true
	case next == '&' && c == 'u' && peek(src, start+2) == '"':
		return lx.quoted(tokUnicodeIdent, start+3, '"', false), true
	}
	return token{}, false
}

// skipBlanksAndComments advances past white space, byte order marks and
// comments, looking for a routing hint in every comment.
func (lx *lexer) skipBlanksAndComments() {
	src := lx.src
	for lx.pos < len(src) {
		c := src[lx.pos]
		switch {
		case isBlank(c):
			lx.pos++
		case c == 0xEF && strings.HasPrefix(src[lx.pos:], byteOrderMark):
			lx.pos += len(byteOrderMark)
		case c == '-' && peek(src, lx.pos+1) == '-':
			start := lx.pos + 2
			end := start
			for end < len(src) && src[end] != '\n' && src[end] != '\r' {
				end++
			}
			lx.noteHint(src[start:end])
			lx.pos = end
		case c == '/' && peek(src, lx.pos+1) == '*':
			lx.blockComment()
		default:
			return
		}
	}
}

// blockComment skips a /* ... */ comment, which may nest.
func (lx *lexer) blockComment() {
	src := lx.src
	start := lx.pos + 2
	depth := 1
	for i := start; i+1 < len(src); i++ {
		switch {
		case src[i] == '/' && src[i+1] == '*':
			depth++
			i++
		case src[i] == '*' && src[i+1] == '/':
			depth--
			i++
			if depth == 0 {
				lx.noteHint(src[start : i-1])
				lx.pos = i + 1
				return
			}
		}
	}
	lx.pos = len(src)
	lx.unterminated = "unterminated comment"
}

// quoted lexes a literal whose body starts at body and ends at the next
// unescaped quote byte; a doubled quote stands for itself and, with
// backslashes set, so does a backslash-escaped byte.
func (lx *lexer) quoted(kind tokenKind, body int, quote byte, backslashes bool) token {
	src := lx.src
	for i := body; i < len(src); i++ {
		switch src[i] {
		case '\\':
			if backslashes {
				i++
			}
		case quote:
			if peek(src, i+1) == quote {
				i++
				continue
			}
			lx.pos = i + 1
			return token{kind: kind, text: src[body:i]}
		}
	}
	lx.pos = len(src)
	if kind == tokString {
		lx.unterminated = "unterminated string"
	} else {
		lx.unterminated = "unterminated quoted identifier"
	}
	return token{kind: kind, text: src[body:]}
}

// dollar lexes what starts with '$': a parameter ($1), a dollar-quoted
// string ($$...$$ or $tag$...$tag$), or a lone '$'.
func (lx *lexer) dollar(start int) token {
	src := lx.src
	if isDigit(peek(src, start+1)) {
		end := start + 1
		for end < len(src) && isDigit(src[end]) {
			end++
		}
		lx.pos = end
		return token{kind: tokParam, text: src[start:end]}
	}
	end := start + 1
	if end < len(src) && isIdentStart(src[end]) {
		for end < len(src) && isIdentCont(src[end]) && src[end] != '$' {
			end++
		}
	}
	if peek(src, end) != '$' {
		lx.pos = start + 1
		return token{kind: tokPunct, text: src[start : start+1]}
	}
	delim := src[start : end+1]
	body := end + 1
	if n := strings.Index(src[body:], delim); n >= 0 {
		lx.pos = body + n + len(delim)
		return token{kind: tokString, text: src[body : body+n]}
	}
	lx.pos = len(src)
	lx.unterminated = "unterminated string"
	return token{kind: tokString, text: src[body:]}
}

// noteHint records the routing hint a comment body carries, if any. When
// both hints appear, Primary wins: it is always safe.
func (lx *lexer) noteHint(comment string) {
	switch parseHint(comment) {
	case Primary:
		lx.hint = Primary
	case Replica:
		if lx.hint == NoHint {
			lx.hint = Replica
		}
	}
}

// parseHint reads a comment body of the form "pgwait:primary" or
// "pgwait:replica", ignoring case and blanks around each part.
func parseHint(comment string) Hint {
	s := trimBlanks(comment)
	if len(s) < len("pgwait:primary") || !equalFold(s[:len("pgwait")], "pgwait") {
		return NoHint
	}
	s = trimBlanks(s[len("pgwait"):])
	if len(s) == 0 || s[0] != ':' {
		return NoHint
	}
	switch s = trimBlanks(s[1:]); {
	case equalFold(s, "primary"):
		return Primary
	case equalFold(s, "replica"):
		return Replica
	}
	return NoHint
}

// numberEnd returns where the numeric literal starting at start ends. Letters
// right after a number are left for the next token (PostgreSQL before 15 lexed
// "1FOR" as 1 FOR; later versions reject it).
func numberEnd(src string, start int) int {
	i := start
	if src[i] == '0' && isRadixPrefix(peek(src, i+1)) && isHexDigit(peek(src, i+2)) {
		i += 2
		for i < len(src) && (isHexDigit(src[i]) || src[i] == '_') {
			i++
		}
		return i
	}
	for i < len(src) && (isDigit(src[i]) || src[i] == '_') {
		i++
	}
	if peek(src, i) == '.' && peek(src, i+1) != '.' {
		i++
		for i < len(src) && (isDigit(src[i]) || src[i] == '_') {
			i++
		}
	}
	if c := peek(src, i); c == 'e' || c == 'E' {
		j := i + 1
		if c := peek(src, j); c == '+' || c == '-' {
			j++
		}
		if isDigit(peek(src, j)) {
			i = j
			for i < len(src) && isDigit(src[i]) {
				i++
			}
		}
	}
	return i
}

const byteOrderMark = "\xEF\xBB\xBF"

// peek returns src[i], or 0 past the end.
func peek(src string, i int) byte {
	if i < len(src) {
		return src[i]
	}
	return 0
}

// Byte classes, as bits of byteClass.
const (
	classBlank        = 1 << iota // white space
	classIdentStart               // may start an identifier or keyword
	classIdentCont                // may continue one
	classQuotePrefix              // e, b, x, n, u: may prefix a quote
	classCommentStart             // '-', '/' or the first byte of a byte order mark
)

// byteClass classifies every byte for the lexer's inner loops.
var byteClass = func() (table [256]uint8) {
	for c := 0; c < 256; c++ {
		b := byte(c)
		switch {
		case b == ' ' || b == '\t' || b == '\n' || b == '\r' || b == '\f' || b == '\v':
			table[c] |= classBlank
		case ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || b == '_' || b >= 0x80:
			// PostgreSQL takes every non-ASCII byte as a letter.
			table[c] |= classIdentStart | classIdentCont
		case isDigit(b) || b == '$':
			table[c] |= classIdentCont
		}
		switch toLower(b) {
		case 'e', 'b', 'x', 'n', 'u':
			table[c] |= classQuotePrefix
		case '-', '/', byteOrderMark[0]:
			table[c] |= classCommentStart
		}
	}
	return table
}()

func isBlank(c byte) bool { return byteClass[c]&classBlank != 0 }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isHexDigit(c byte) bool {
	return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func isRadixPrefix(c byte) bool {
	return c == 'x' || c == 'X' || c == 'o' || c == 'O' || c == 'b' || c == 'B'
}

func isIdentStart(c byte) bool { return byteClass[c]&classIdentStart != 0 }

func isIdentCont(c byte) bool { return byteClass[c]&classIdentCont != 0 }

func trimBlanks(s string) string {
	for len(s) > 0 && isBlank(s[0]) {
		s = s[1:]
	}
	for len(s) > 0 && isBlank(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

// equalFold reports whether s equals the lower-case ASCII word lower,
// ignoring ASCII case.
func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if toLower(s[i]) != lower[i] {
			return false
		}
	}
	return true
}

func toLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
