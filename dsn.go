package pgwait

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// settings are a connection string's settings, keyed as pgx keys them
// ("database" for dbname). parseSettings reads them the way pgx.ParseConfig
// does, so that pgwait can take its own keys out, derive each replica's
// settings from the primary's, and write a connection string back.
type settings map[string]string

// secretKeys are the settings whose values never appear in pgwait's errors
// or in Config.String.
var secretKeys = []string{"password", "sslpassword"}

// parseSettings reads a connection string, postgres:// URL or keyword=value,
// as pgx.ParseConfig does. Its errors never quote the connection string.
func parseSettings(dsn string) (settings, error) {
	if strings.IndexByte(dsn, 0) >= 0 {
		return nil, errors.New("it holds a NUL byte")
	}
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s, err := parseURL(dsn)
		if s["user"] == "" {
			delete(s, "user") // as in keyword=value form, where user= is ignored
		}
		if err != nil {
			return nil, fmt.Errorf("not a valid postgres:// URL: %w; percent-encode reserved characters (such as @ : / ? & = %% and spaces) in user names, passwords and values", err)
		}
		return s, nil
	}
	s, err := parseKeywordValue(dsn)
	if err != nil {
		return nil, fmt.Errorf("not valid keyword=value settings: %w; write key=value pairs separated by spaces, quoting values that hold spaces or quotes with single quotes (escape ' and \\ with a backslash)", err)
	}
	return s, nil
}

// parseURL mirrors pgconn's parseURLSettings (libpq's URI parser): userinfo,
// a comma-separated host[:port] list, a database, query parameters.
func parseURL(dsn string) (settings, error) {
	s := settings{}
	p, ok := strings.CutPrefix(dsn, "postgresql://")
	if !ok {
		p, _ = strings.CutPrefix(dsn, "postgres://")
	}
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		user, password, hasPassword := strings.Cut(p[:i], ":")
		p = p[i+1:]
		if user != "" {
			v, err := uriDecode(user)
			if err != nil {
				return nil, fmt.Errorf("the user name: %w", err)
			}
			s["user"] = v
		}
		if hasPassword && password != "" {
			v, err := uriDecode(password)
			if err != nil {
				return nil, fmt.Errorf("the password: %w", err)
			}
			s["password"] = v
		}
	}
	var hosts, ports strings.Builder
	for {
		if strings.HasPrefix(p, "[") {
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return nil, errors.New(`an IPv6 address lacks its closing "]"`)
			}
			if end == 1 {
				return nil, errors.New("an IPv6 address is empty")
			}
			hosts.WriteString(p[1:end])
			p = p[end+1:]
			if p != "" && !strings.ContainsRune(":/?,", rune(p[0])) {
				return nil, errors.New(`an IPv6 address must be followed by ":", "/", "?" or ","`)
			}
		} else {
			i := strings.IndexAny(p, ":/?,")
			if i < 0 {
				i = len(p)
			}
			hosts.WriteString(p[:i])
			p = p[i:]
		}
		if strings.HasPrefix(p, ":") {
			p = p[1:]
			i := strings.IndexAny(p, "/?,")
			if i < 0 {
				i = len(p)
			}
			ports.WriteString(p[:i])
			p = p[i:]
		}
		if !strings.HasPrefix(p, ",") {
			break
		}
		p = p[1:]
		hosts.WriteByte(',')
		ports.WriteByte(',')
	}
	if hosts.Len() > 0 {
		v, err := uriDecode(hosts.String())
		if err != nil {
			return nil, fmt.Errorf("the host: %w", err)
		}
		s["host"] = v
	}
	if ports.Len() > 0 {
		v, err := uriDecode(ports.String())
		if err != nil {
			return nil, fmt.Errorf("the port: %w", err)
		}
		s["port"] = v
	}
	if strings.HasPrefix(p, "/") {
		db := p[1:]
		p = ""
		if i := strings.IndexByte(db, '?'); i >= 0 {
			db, p = db[:i], db[i:]
		}
		if db != "" {
			v, err := uriDecode(db)
			if err != nil {
				return nil, fmt.Errorf("the database name: %w", err)
			}
			s["database"] = v
		}
	}
	if strings.HasPrefix(p, "?") {
		query := settings{}
		sslLast := false
		for params := p[1:]; params != ""; {
			pair := params
			if i := strings.IndexByte(params, '&'); i >= 0 {
				pair, params = params[:i], params[i+1:]
			} else {
				params = ""
			}
			rawKey, rawValue, found := strings.Cut(pair, "=")
			if !found || strings.IndexByte(rawValue, '=') >= 0 {
				return nil, errors.New(`each query parameter must be one key=value pair, separated by "&"`)
			}
			key, err := uriDecode(rawKey)
			if err != nil {
				return nil, fmt.Errorf("a query parameter's name: %w", err)
			}
			key = canonicalKey(key)
			value, err := uriDecode(rawValue)
			if err != nil {
				return nil, fmt.Errorf("the value of a query parameter: %w", err)
			}
			switch key {
			case "ssl":
				sslLast = true
			case "sslmode":
				sslLast = false
			}
			query[key] = value
		}
		if query["ssl"] == "true" {
			delete(query, "ssl")
			if sslLast {
				query["sslmode"] = "require"
			}
		}
		for k, v := range query {
			s[k] = v
		}
	}
	return s, nil
}

// uriDecode percent-decodes a URL component as libpq does: leading and
// trailing spaces are dropped, other spaces and %00 are refused. Its errors
// do not quote the component.
func uriDecode(raw string) (string, error) {
	raw = strings.Trim(raw, " ")
	if strings.IndexByte(raw, ' ') >= 0 {
		return "", errors.New("it holds a space; write spaces as %20")
	}
	var b strings.Builder
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			b.WriteByte(raw[i])
			continue
		}
		if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
			return "", errors.New(`a "%" is not followed by two hexadecimal digits; write % itself as %25`)
		}
		c := unhex(raw[i+1])<<4 | unhex(raw[i+2])
		if c == 0 {
			return "", errors.New("it holds %00")
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// isSpace is libpq's notion of white space in keyword=value strings.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

const spaces = " \t\n\r\v\f"

// parseKeywordValue mirrors pgconn's parseKeywordValueSettings.
func parseKeywordValue(str string) (settings, error) {
	s := settings{}
	str = strings.TrimLeft(str, spaces)
	for str != "" {
		eq := strings.IndexByte(str, '=')
		if eq < 0 {
			return nil, errors.New(`a setting lacks its "="`)
		}
		key := strings.Trim(str[:eq], spaces)
		if strings.ContainsAny(key, spaces) {
			return nil, errors.New(`a setting's name is followed by something other than "="`)
		}
		str = strings.TrimLeft(str[eq+1:], spaces)
		var val string
		switch {
		case str == "":
		case str[0] != '\'':
			end := 0
			for ; end < len(str) && !isSpace(str[end]); end++ {
				if str[end] == '\\' {
					end++
					if end == len(str) {
						break
					}
				}
			}
			val = unescape(str[:end])
			str = strings.TrimLeft(str[end:], spaces)
		default:
			str = str[1:]
			end := 0
			for ; end < len(str) && str[end] != '\''; end++ {
				if str[end] == '\\' {
					end++
				}
			}
			if end >= len(str) {
				return nil, errors.New("a quoted value lacks its closing quote")
			}
			val = unescape(str[:end])
			str = strings.TrimLeft(str[end+1:], spaces)
		}
		key = canonicalKey(key)
		if key == "" {
			return nil, errors.New(`a "=" has no setting name before it`)
		}
		if key == "user" && val == "" {
			continue
		}
		s[key] = val
	}
	return s, nil
}

// unescape drops each backslash and keeps the character after it.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// canonicalKey spells a key as pgx keys its settings.
func canonicalKey(k string) string {
	if k == "dbname" {
		return "database"
	}
	return k
}

// keys returns s's keys in the order they are written: sorted.
func (s settings) keys() []string {
	ks := make([]string, 0, len(s))
	for k := range s {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// check refuses settings that keyword=value text cannot carry: names that
// are empty or hold spaces, "=" or quotes.
func (s settings) check() error {
	for k := range s {
		if k == "" || strings.ContainsAny(k, spaces+`='\`) {
			return errors.New(`a setting's name is empty or holds a space, "=", a quote or a backslash; PostgreSQL has no such setting`)
		}
	}
	return nil
}

// keywordValue writes s as keyword=value text, keys sorted, "database" as
// dbname. With redact, secrets are written as xxxxx.
func (s settings) keywordValue(redact bool) string {
	var b strings.Builder
	for _, k := range s.keys() {
		v := s[k]
		if redact && isSecret(k) {
			v = "xxxxx"
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		if k == "database" {
			b.WriteString("dbname")
		} else {
			b.WriteString(k)
		}
		b.WriteByte('=')
		b.WriteString(quoteValue(v))
	}
	return b.String()
}

// quoteValue writes a keyword=value value, quoted when it must be.
func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, spaces+`'\`) {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// url writes s as a postgres:// URL with every setting in the query. With
// redact, secrets are written as xxxxx.
func (s settings) url(redact bool) string {
	var b strings.Builder
	b.WriteString("postgres://")
	for i, k := range s.keys() {
		v := s[k]
		if redact && isSecret(k) {
			v = "xxxxx"
		}
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		if k == "database" {
			k = "dbname"
		}
		b.WriteString(uriEncode(k))
		b.WriteByte('=')
		b.WriteString(uriEncode(v))
	}
	return b.String()
}

// uriEncode percent-encodes every byte but letters, digits and -._~.
func uriEncode(v string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func isSecret(key string) bool {
	for _, k := range secretKeys {
		if key == k {
			return true
		}
	}
	return false
}

// secrets returns the non-empty secret values of s.
func (s settings) secrets() []string {
	var out []string
	for _, k := range secretKeys {
		if v := s[k]; v != "" {
			out = append(out, v)
		}
	}
	return out
}

// without returns a copy of s without keys.
func (s settings) without(keys ...string) settings {
	c := make(settings, len(s))
	for k, v := range s {
		c[k] = v
	}
	for _, k := range keys {
		delete(c, k)
	}
	return c
}

// equal reports whether s and o hold the same settings.
func (s settings) equal(o settings) bool {
	if len(s) != len(o) {
		return false
	}
	for k, v := range s {
		if w, ok := o[k]; !ok || w != v {
			return false
		}
	}
	return true
}
