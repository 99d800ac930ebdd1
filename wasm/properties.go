package wasm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"

	"github.com/sluice-proxy/sluice/proxy"
)

// Properties are Envoy attributes addressed by a path of NUL-separated
// segments ("request\x00path"); the host also accepts the same names joined
// with dots in one segment ("request.path"). The table is in doc.go.

// property identifies a property the host defines itself.
type property uint8

const (
	propUnknown property = iota
	propRequestPath
	propRequestURLPath
	propRequestQuery
	propRequestHost
	propRequestMethod
	propRequestScheme
	propRequestHeaders
	propRequestID
	propRequestProtocol
	propRequestTime
	propRequestSize
	propRequestUserAgent
	propRequestReferer
	propSourceAddress
	propSourcePort
	propDestinationAddress
	propDestinationPort
	propResponseCode
	propResponseHeaders
	propPluginName
	propPluginRootID
	propPluginVMID
	propUpstream
	propActiveRequests
	propMaxConcurrentRequests
	propUpstreams
	propEndpoint
)

// normalizePropertyPath appends path to dst in dotted form: NUL separators
// become '.', and trailing NULs (some SDKs terminate the path) are dropped.
// It reports false for an empty path or an empty segment.
func normalizePropertyPath(dst, path []byte) ([]byte, bool) {
	for len(path) > 0 && path[len(path)-1] == 0 {
		path = path[:len(path)-1]
	}
	if len(path) == 0 {
		return dst, false
	}
	start := len(dst)
	for _, c := range path {
		if c == 0 {
			c = '.'
		}
		dst = append(dst, c)
	}
	name := dst[start:]
	if name[0] == '.' || name[len(name)-1] == '.' || bytes.Contains(name, doubleDot) {
		return dst, false
	}
	return dst, true
}

var doubleDot = []byte("..")

// lookupProperty maps a normalised name to a host property.
func lookupProperty(name []byte) property {
	switch string(name) {
	case "request.path":
		return propRequestPath
	case "request.url_path":
		return propRequestURLPath
	case "request.query":
		return propRequestQuery
	case "request.host":
		return propRequestHost
	case "request.method":
		return propRequestMethod
	case "request.scheme":
		return propRequestScheme
	case "request.headers":
		return propRequestHeaders
	case "request.id":
		return propRequestID
	case "request.protocol":
		return propRequestProtocol
	case "request.time":
		return propRequestTime
	case "request.size":
		return propRequestSize
	case "request.useragent":
		return propRequestUserAgent
	case "request.referer":
		return propRequestReferer
	case "source.address":
		return propSourceAddress
	case "source.port":
		return propSourcePort
	case "destination.address":
		return propDestinationAddress
	case "destination.port":
		return propDestinationPort
	case "response.code":
		return propResponseCode
	case "response.headers":
		return propResponseHeaders
	case "plugin_name":
		return propPluginName
	case "plugin_root_id":
		return propPluginRootID
	case "plugin_vm_id":
		return propPluginVMID
	case "sluice.upstream":
		return propUpstream
	case "sluice.active_requests":
		return propActiveRequests
	case "sluice.max_concurrent_requests":
		return propMaxConcurrentRequests
	case "sluice.upstreams":
		return propUpstreams
	case "sluice.endpoint":
		return propEndpoint
	}
	return propUnknown
}

// propertyValue is the result of reading a property: bytes, or a header
// map the caller serialises straight into guest memory.
type propertyValue struct {
	data    []byte
	headers *proxy.Headers
}

// getProperty resolves prop for the effective context s (nil: the root
// context). buf is scratch space for encoded values; the result may alias
// it or the Exchange's storage. name is the normalised name, used for
// values stored with set_property.
func (p *Plugin) getProperty(s *stream, prop property, name, buf []byte) (propertyValue, status) {
	switch prop {
	case propPluginName:
		return propertyValue{data: p.nameBytes}, statusOK
	case propPluginRootID:
		return propertyValue{data: p.rootIDBytes}, statusOK
	case propPluginVMID:
		return propertyValue{data: p.vmIDBytes}, statusOK
	}
	if s == nil {
		return propertyValue{}, statusNotFound
	}
	ex := s.ex
	req := ex.RequestHeaders()
	switch prop {
	case propRequestPath:
		return headerProperty(req, ":path")
	case propRequestURLPath, propRequestQuery:
		v, ok := req.GetString(":path")
		if !ok {
			return propertyValue{}, statusNotFound
		}
		path, query, _ := bytes.Cut(v, questionMark)
		if prop == propRequestQuery {
			return propertyValue{data: query}, statusOK
		}
		return propertyValue{data: path}, statusOK
	case propRequestHost:
		return headerProperty(req, ":authority")
	case propRequestMethod:
		return headerProperty(req, ":method")
	case propRequestScheme:
		return headerProperty(req, ":scheme")
	case propRequestUserAgent:
		return headerProperty(req, "user-agent")
	case propRequestReferer:
		return headerProperty(req, "referer")
	case propRequestHeaders:
		return propertyValue{headers: req}, statusOK
	case propRequestID:
		return propertyValue{data: ex.RequestID()}, statusOK
	case propRequestProtocol:
		return propertyValue{data: append(buf, ex.Protocol()...)}, statusOK
	case propRequestTime:
		if ex.StartTime().IsZero() {
			return propertyValue{}, statusNotFound
		}
		return int64Property(buf, ex.StartTime().UnixNano())
	case propRequestSize:
		return int64Property(buf, int64(len(ex.RequestBody())))
	case propSourceAddress, propSourcePort:
		return addrProperty(buf, ex.RemoteAddr(), prop == propSourcePort)
	case propDestinationAddress, propDestinationPort:
		return addrProperty(buf, ex.LocalAddr(), prop == propDestinationPort)
	case propResponseCode:
		if ex.ResponseCode() == 0 {
			return propertyValue{}, statusNotFound
		}
		return int64Property(buf, int64(ex.ResponseCode()))
	case propResponseHeaders:
		if !s.responseSeen {
			return propertyValue{}, statusNotFound
		}
		return propertyValue{headers: ex.ResponseHeaders()}, statusOK
	case propUpstream:
		return propertyValue{data: append(buf, ex.Upstream()...)}, statusOK
	case propActiveRequests:
		return int64Property(buf, ex.ActiveRequests())
	case propMaxConcurrentRequests:
		return int64Property(buf, ex.MaxConcurrentRequests())
	case propUpstreams:
		return propertyValue{data: ex.AppendUpstreamsJSON(buf)}, statusOK
	case propEndpoint:
		return propertyValue{data: append(buf, ex.Endpoint()...)}, statusOK
	}
	if v, ok := ex.Property(string(name)); ok {
		return propertyValue{data: v}, statusOK
	}
	return propertyValue{}, statusNotFound
}

var questionMark = []byte("?")

func headerProperty(h *proxy.Headers, key string) (propertyValue, status) {
	v, ok := h.GetString(key)
	if !ok {
		return propertyValue{}, statusNotFound
	}
	return propertyValue{data: v}, statusOK
}

// int64Property encodes v as Envoy encodes integers, timestamps and
// durations: 8 bytes, little-endian.
func int64Property(buf []byte, v int64) (propertyValue, status) {
	return propertyValue{data: binary.LittleEndian.AppendUint64(buf, uint64(v))}, statusOK
}

// addrProperty encodes addr as "ip:port" (or its port as an 8-byte int).
func addrProperty(buf []byte, addr net.Addr, port bool) (propertyValue, status) {
	if addr == nil {
		return propertyValue{}, statusNotFound
	}
	if ta, ok := addr.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		if port {
			return int64Property(buf, int64(ap.Port()))
		}
		return propertyValue{data: ap.AppendTo(buf)}, statusOK
	}
	if port {
		return propertyValue{}, statusNotFound
	}
	return propertyValue{data: append(buf, addr.String()...)}, statusOK
}

// setProperty writes a property for stream s (nil: the root context, where
// nothing is writable). Host-defined properties other than sluice.upstream
// and sluice.endpoint are read-only (BAD_ARGUMENT); any other name is
// stored on the Exchange and reads back with get_property.
func (p *Plugin) setProperty(s *stream, prop property, name, value []byte) status {
	if s == nil {
		return statusNotFound
	}
	switch prop {
	case propUnknown:
		s.ex.SetProperty(string(name), value)
		return statusOK
	case propUpstream:
		if err := s.ex.SetUpstream(string(value)); err != nil {
			if errors.Is(err, proxy.ErrUnknownUpstream) {
				return statusBadArgument
			}
			return statusInternalFailure
		}
		return statusOK
	case propEndpoint:
		if err := s.ex.SetEndpointBytes(value); err != nil {
			if errors.Is(err, proxy.ErrUnknownEndpoint) || errors.Is(err, proxy.ErrEndpointChosen) {
				return statusBadArgument
			}
			return statusInternalFailure
		}
		return statusOK
	}
	return statusBadArgument
}
