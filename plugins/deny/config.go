package main

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/sluice-proxy/sluice/plugins/internal/config"
	"github.com/sluice-proxy/sluice/plugins/internal/openai"
	"net/url"
	"path"
	"strings"
)

// Config is the plugin configuration (JSON):
//
//	{"rules": [{"path_prefix": "/admin",
//	            "header": {"name": "x-blocked", "value": "1"},
//	            "status": 403, "message": "admin API is disabled"}]}
type Config struct {
	// Rules are tried in order; the first that matches denies the request.
	Rules []Rule `json:"rules"`
}

// Rule denies requests that match all of its matchers (at least one of
// PathPrefix and Header is required).
type Rule struct {
	// PathPrefix matches when the request path (":path" without its query,
	// with dot segments and repeated slashes removed, tried both as sent and
	// percent-decoded) starts with it. It must start with "/". The match is a
	// plain string prefix: "/admin" also matches "/administrator".
	PathPrefix string `json:"path_prefix"`
	// Header matches on a request header.
	Header *HeaderMatch `json:"header"`
	// Status is the reply's status code, 400–599. Default 403.
	Status int `json:"status"`
	// Message is the error message in the reply body. Default
	// "Request denied by policy.".
	Message string `json:"message"`
	// Type is the OpenAI error type in the reply body: "permission_error" or
	// "invalid_request_error". Default: permission_error for 401 and 403,
	// invalid_request_error otherwise.
	Type string `json:"type"`
}

// HeaderMatch matches a request header by name (case-insensitive) and,
// when Value is present, exact value; with several values, any may match.
// Without Value the header's presence is enough.
type HeaderMatch struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

// Defaults applied by parseConfig.
const (
	defaultStatus  = 403
	defaultMessage = "Request denied by policy."
)

// rule is a validated Rule with its reply body built once.
type rule struct {
	pathPrefix  string
	headerName  string // lower-case; "" when the rule has no header matcher
	headerValue *string
	status      uint32
	body        []byte
}

// replyBody is the OpenAI-compatible error envelope of a denial: code
// "denied", param null.
func replyBody(message, typ string) []byte { return openai.ErrorBody(message, typ, "", "denied") }

// failClosedStatus and failClosedBody answer a request whose headers the
// plugin could not read: the policy cannot be evaluated, so it denies.
const failClosedStatus = 500

var failClosedBody = replyBody("The request could not be checked against the access policy.", "server_error")

// parseConfig decodes and validates a configuration. Errors name the rule
// and field at fault, e.g. `deny: rules[1].status: 200 is not in 400..599`.
func parseConfig(data []byte) ([]rule, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(`deny: the configuration is empty; it needs {"rules": [...]}`)
	}
	var cfg Config
	if err := config.Decode("deny", data, &cfg); err != nil {
		return nil, err
	}
	if len(cfg.Rules) == 0 {
		return nil, errors.New("deny: rules: at least one rule is required")
	}
	rules := make([]rule, 0, len(cfg.Rules))
	for i, in := range cfg.Rules {
		r, err := compileRule(in)
		if err != nil {
			return nil, fmt.Errorf("deny: rules[%d].%w", i, err)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func compileRule(in Rule) (rule, error) {
	var r rule
	if in.PathPrefix == "" && in.Header == nil {
		return r, errors.New("path_prefix/header: a rule needs path_prefix, header or both")
	}
	if in.PathPrefix != "" {
		if in.PathPrefix[0] != '/' {
			return r, fmt.Errorf("path_prefix: %q does not start with /", in.PathPrefix)
		}
		r.pathPrefix = in.PathPrefix
	}
	if h := in.Header; h != nil {
		if h.Name == "" {
			return r, errors.New("header.name: empty header name")
		}
		if strings.ContainsAny(h.Name, " \t\r\n\x00") {
			return r, fmt.Errorf("header.name: %q contains whitespace or control bytes", h.Name)
		}
		r.headerName = strings.ToLower(h.Name)
		r.headerValue = h.Value
	}
	status := in.Status
	if status == 0 {
		status = defaultStatus
	}
	if status < 400 || status > 599 {
		return r, fmt.Errorf("status: %d is not in 400..599", in.Status)
	}
	r.status = uint32(status)
	typ := in.Type
	switch typ {
	case "":
		typ = "invalid_request_error"
		if status == 401 || status == 403 {
			typ = "permission_error"
		}
	case "permission_error", "invalid_request_error":
	default:
		return r, fmt.Errorf("type: %q is not permission_error or invalid_request_error", in.Type)
	}
	msg := in.Message
	if msg == "" {
		msg = defaultMessage
	}
	r.body = replyBody(msg, typ)
	return r, nil
}

// match returns the first rule matching a request with the given headers
// (pseudo-headers included), or nil.
func match(rules []rule, headers [][2]string) *rule {
	var rawPath string
	for _, kv := range headers {
		if kv[0] == ":path" {
			rawPath = kv[1]
			break
		}
	}
	var paths []string // computed on first use
	for i := range rules {
		r := &rules[i]
		if r.pathPrefix != "" {
			if paths == nil {
				paths = pathForms(rawPath)
			}
			if !anyHasPrefix(paths, r.pathPrefix) {
				continue
			}
		}
		if r.headerName != "" && !headerMatches(headers, r.headerName, r.headerValue) {
			continue
		}
		return r
	}
	return nil
}

func anyHasPrefix(paths []string, prefix string) bool {
	for _, p := range paths {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	return false
}

func headerMatches(headers [][2]string, name string, value *string) bool {
	for _, kv := range headers {
		if strings.EqualFold(kv[0], name) && (value == nil || kv[1] == *value) {
			return true
		}
	}
	return false
}

// pathForms returns the forms of a ":path" value that path prefixes are
// matched against: the path without query or fragment, cleaned of dot
// segments and repeated slashes, as sent and (when it decodes) percent-
// decoded. Matching any form makes "/%61dmin", "//admin" and
// "/x/../admin" match a rule for "/admin", as an upstream would route them.
// An empty or non-absolute path (e.g. "*") yields no forms and matches no
// path rule.
func pathForms(raw string) []string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		raw = raw[:i]
	}
	if raw == "" || raw[0] != '/' {
		return []string{}
	}
	forms := []string{cleanPath(raw)}
	if strings.IndexByte(raw, '%') >= 0 {
		if dec, err := url.PathUnescape(raw); err == nil {
			if c := cleanPath(dec); c != forms[0] {
				forms = append(forms, c)
			}
		}
	}
	return forms
}

// cleanPath is path.Clean that keeps a trailing slash.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}
