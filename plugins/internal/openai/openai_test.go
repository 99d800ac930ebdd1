package openai

import (
	"encoding/json"
	"testing"
	"unicode/utf8"
)

func TestErrorBody(t *testing.T) {
	for _, c := range []struct {
		message, typ, param, code string
		want                      string
	}{
		{"Incorrect API key provided", "invalid_request_error", "", "invalid_api_key",
			`{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`},
		{"no", "server_error", "", "",
			`{"error":{"message":"no","type":"server_error","param":null,"code":null}}`},
		{"The model `x` does not exist", "invalid_request_error", "model", "model_not_found",
			`{"error":{"message":"The model ` + "`x`" + ` does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}`},
		// Quotes, control bytes and HTML-sensitive bytes are escaped.
		{"a\"b\n<c>", "t", "p", "c",
			`{"error":{"message":"a\"b\n\u003cc\u003e","type":"t","param":"p","code":"c"}}`},
	} {
		if got := string(ErrorBody(c.message, c.typ, c.param, c.code)); got != c.want {
			t.Errorf("ErrorBody(%q, %q, %q, %q)\n got %s\nwant %s", c.message, c.typ, c.param, c.code, got, c.want)
		}
	}
}

// FuzzErrorBody checks that any strings give valid JSON that decodes back
// to them, with "" as null. (encoding/json replaces invalid UTF-8 with
// U+FFFD, so only valid input is compared.)
func FuzzErrorBody(f *testing.F) {
	f.Add("Rate limit reached", "requests", "", "rate_limit_exceeded")
	f.Add("\xff\x00", "", "model", "")
	f.Fuzz(func(t *testing.T, message, typ, param, code string) {
		// null decodes to a nil *string.
		var env map[string]map[string]*string
		b := ErrorBody(message, typ, param, code)
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		e := env["error"]
		if len(env) != 1 || len(e) != 4 {
			t.Fatalf("%s: want exactly {\"error\":{message,type,param,code}}", b)
		}
		for _, c := range []struct{ name, want string }{{"message", message}, {"type", typ}, {"param", param}, {"code", code}} {
			got := e[c.name]
			if (got == nil) != (c.want == "" && (c.name == "param" || c.name == "code")) {
				t.Fatalf("%s: %s %q: null must stand for an empty param or code, and only for that", b, c.name, c.want)
			}
			if utf8.ValidString(c.want) && deref(got) != c.want {
				t.Errorf("%s %q came back as %q", c.name, c.want, deref(got))
			}
		}
	})
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
