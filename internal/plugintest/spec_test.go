package plugintest_test

// Proxy-Wasm ABI v0.2.1 signatures and memory layouts, transcribed from the
// specification (proxy-wasm/spec, abi-versions/v0.2.1/README.md), used to
// check that the guests and fixtures declare exactly what the spec says.

// hostFunc describes one host function: its parameter count (all i32, one i32
// result) and which parameters address guest memory.
type hostFunc struct {
	params int
	// in lists (pointer, length) parameter index pairs the host reads.
	in [][2]int
	// out lists (pointer parameter index, byte size) for fixed-size outputs.
	out [][2]int
}

// hostFuncs covers every v0.2.1 host function that the guests and fixtures
// import (all of them take only i32 parameters).
var hostFuncs = map[string]hostFunc{
	"proxy_log":                          {3, [][2]int{{1, 2}}, nil},
	"proxy_get_log_level":                {1, nil, [][2]int{{0, 4}}},
	"proxy_get_current_time_nanoseconds": {1, nil, [][2]int{{0, 8}}},
	"proxy_set_effective_context":        {1, nil, nil},
	"proxy_get_header_map_value":         {5, [][2]int{{1, 2}}, [][2]int{{3, 4}, {4, 4}}},
	"proxy_add_header_map_value":         {5, [][2]int{{1, 2}, {3, 4}}, nil},
	"proxy_replace_header_map_value":     {5, [][2]int{{1, 2}, {3, 4}}, nil},
	"proxy_remove_header_map_value":      {3, [][2]int{{1, 2}}, nil},
	"proxy_get_header_map_pairs":         {3, nil, [][2]int{{1, 4}, {2, 4}}},
	"proxy_set_header_map_pairs":         {3, [][2]int{{1, 2}}, nil},
	"proxy_get_header_map_size":          {2, nil, [][2]int{{1, 4}}},
	"proxy_get_buffer_bytes":             {5, nil, [][2]int{{3, 4}, {4, 4}}},
	"proxy_set_buffer_bytes":             {5, [][2]int{{3, 4}}, nil},
	"proxy_get_buffer_status":            {3, nil, [][2]int{{1, 4}, {2, 4}}},
	"proxy_get_property":                 {4, [][2]int{{0, 1}}, [][2]int{{2, 4}, {3, 4}}},
	"proxy_set_property":                 {4, [][2]int{{0, 1}, {2, 3}}, nil},
	"proxy_send_local_response":          {8, [][2]int{{1, 2}, {3, 4}, {5, 6}}, nil},
	"proxy_get_shared_data":              {5, [][2]int{{0, 1}}, [][2]int{{2, 4}, {3, 4}, {4, 4}}},
	"proxy_set_shared_data":              {5, [][2]int{{0, 1}, {2, 3}}, nil},
	"proxy_http_call":                    {10, [][2]int{{0, 1}, {2, 3}, {4, 5}, {6, 7}}, [][2]int{{9, 4}}},
	"proxy_continue_stream":              {1, nil, nil},
}

// callbackSig is an exported guest function's (parameter count, result
// count); all values are i32.
type callbackSig struct{ params, results int }

// callbacks lists the v0.2.1 callbacks the guests and fixtures export.
var callbacks = map[string]callbackSig{
	"_initialize":               {0, 0},
	"proxy_abi_version_0_2_0":   {0, 0},
	"proxy_abi_version_0_2_1":   {0, 0},
	"proxy_on_memory_allocate":  {1, 1},
	"malloc":                    {1, 1},
	"proxy_on_context_create":   {2, 0},
	"proxy_on_vm_start":         {2, 1},
	"proxy_on_configure":        {2, 1},
	"proxy_on_request_headers":  {3, 1},
	"proxy_on_request_body":     {3, 1},
	"proxy_on_response_headers": {3, 1},
	"proxy_on_response_body":    {3, 1},
	"proxy_on_log":              {1, 0},
	"proxy_on_done":             {1, 1},
	"proxy_on_delete":           {1, 0},
}

// Status values from the specification.
const (
	statusOK                  = 0
	statusNotFound            = 1
	statusBadArgument         = 2
	statusInvalidMemoryAccess = 6
	statusInternalFailure     = 10
	statusUnimplemented       = 12
)
