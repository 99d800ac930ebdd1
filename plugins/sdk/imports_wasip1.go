//go:build wasip1

package sdk

import "unsafe"

// Host functions imported from module "env", with the exact Proxy-Wasm ABI
// v0.2.1 signatures. Every pointer is lowered to an i32 address by the
// compiler; every result is a proxy_status_t. Only the functions a plugin
// actually reaches end up in its import section.
//
// Every import is //go:noescape: the host reads the arguments and writes
// the results during the call and keeps no pointer. Without it the
// compiler moves each result variable (an address, a size, a CAS) to the
// heap, and every host call that returns data cost a Go guest two or
// three allocations, ~0.2 µs each.

//go:wasmimport env proxy_log
//go:noescape
func proxyLog(level uint32, msg unsafe.Pointer, msgSize uint32) uint32

//go:wasmimport env proxy_get_log_level
//go:noescape
func proxyGetLogLevel(retLevel *uint32) uint32

//go:wasmimport env proxy_get_current_time_nanoseconds
//go:noescape
func proxyGetCurrentTimeNanoseconds(retTime *uint64) uint32

//go:wasmimport env proxy_set_tick_period_milliseconds
//go:noescape
func proxySetTickPeriodMilliseconds(period uint32) uint32

//go:wasmimport env proxy_get_buffer_bytes
//go:noescape
func proxyGetBufferBytes(bufferType, start, maxSize uint32, retData, retSize *uint32) uint32

//go:wasmimport env proxy_set_buffer_bytes
//go:noescape
func proxySetBufferBytes(bufferType, start, size uint32, data unsafe.Pointer, dataSize uint32) uint32

//go:wasmimport env proxy_get_header_map_pairs
//go:noescape
func proxyGetHeaderMapPairs(mapType uint32, retData, retSize *uint32) uint32

//go:wasmimport env proxy_set_header_map_pairs
//go:noescape
func proxySetHeaderMapPairs(mapType uint32, data unsafe.Pointer, size uint32) uint32

//go:wasmimport env proxy_get_header_map_value
//go:noescape
func proxyGetHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, retData, retSize *uint32) uint32

//go:wasmimport env proxy_add_header_map_value
//go:noescape
func proxyAddHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_replace_header_map_value
//go:noescape
func proxyReplaceHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_remove_header_map_value
//go:noescape
func proxyRemoveHeaderMapValue(mapType uint32, key unsafe.Pointer, keySize uint32) uint32

//go:wasmimport env proxy_continue_stream
//go:noescape
func proxyContinueStream(streamType uint32) uint32

//go:wasmimport env proxy_close_stream
//go:noescape
func proxyCloseStream(streamType uint32) uint32

//go:wasmimport env proxy_send_local_response
//go:noescape
func proxySendLocalResponse(statusCode uint32, details unsafe.Pointer, detailsSize uint32,
	body unsafe.Pointer, bodySize uint32, headers unsafe.Pointer, headersSize uint32, grpcStatus uint32) uint32

//go:wasmimport env proxy_http_call
//go:noescape
func proxyHttpCall(upstream unsafe.Pointer, upstreamSize uint32, headers unsafe.Pointer, headersSize uint32,
	body unsafe.Pointer, bodySize uint32, trailers unsafe.Pointer, trailersSize uint32,
	timeoutMs uint32, retCalloutID *uint32) uint32

//go:wasmimport env proxy_get_property
//go:noescape
func proxyGetProperty(path unsafe.Pointer, pathSize uint32, retData, retSize *uint32) uint32

//go:wasmimport env proxy_set_property
//go:noescape
func proxySetProperty(path unsafe.Pointer, pathSize uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_set_effective_context
//go:noescape
func proxySetEffectiveContext(contextID uint32) uint32

//go:wasmimport env proxy_done
//go:noescape
func proxyDone() uint32

//go:wasmimport env proxy_set_shared_data
//go:noescape
func proxySetSharedData(key unsafe.Pointer, keySize uint32, value unsafe.Pointer, valueSize uint32, cas uint32) uint32

//go:wasmimport env proxy_get_shared_data
//go:noescape
func proxyGetSharedData(key unsafe.Pointer, keySize uint32, retData, retSize, retCas *uint32) uint32

//go:wasmimport env proxy_register_shared_queue
//go:noescape
func proxyRegisterSharedQueue(name unsafe.Pointer, nameSize uint32, retQueueID *uint32) uint32

//go:wasmimport env proxy_resolve_shared_queue
//go:noescape
func proxyResolveSharedQueue(vmID unsafe.Pointer, vmIDSize uint32, name unsafe.Pointer, nameSize uint32, retQueueID *uint32) uint32

//go:wasmimport env proxy_enqueue_shared_queue
//go:noescape
func proxyEnqueueSharedQueue(queueID uint32, value unsafe.Pointer, valueSize uint32) uint32

//go:wasmimport env proxy_dequeue_shared_queue
//go:noescape
func proxyDequeueSharedQueue(queueID uint32, retData, retSize *uint32) uint32

//go:wasmimport env proxy_define_metric
//go:noescape
func proxyDefineMetric(metricType uint32, name unsafe.Pointer, nameSize uint32, retMetricID *uint32) uint32

//go:wasmimport env proxy_record_metric
//go:noescape
func proxyRecordMetric(metricID uint32, value uint64) uint32

//go:wasmimport env proxy_increment_metric
//go:noescape
func proxyIncrementMetric(metricID uint32, delta int64) uint32

//go:wasmimport env proxy_get_metric
//go:noescape
func proxyGetMetric(metricID uint32, retValue *uint64) uint32

//go:wasmimport env proxy_call_foreign_function
//go:noescape
func proxyCallForeignFunction(name unsafe.Pointer, nameSize uint32, args unsafe.Pointer, argsSize uint32, retData, retSize *uint32) uint32

// bytesPtr returns the address of b's first byte, or nil for an empty slice
// (the host sees address 0 with size 0).
func bytesPtr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// stringPtr returns the address of s's first byte; the host only reads it.
func stringPtr(s string) unsafe.Pointer { return unsafe.Pointer(unsafe.StringData(s)) }

// hostBytes finishes a host call that returns (data, size) through
// proxy_on_memory_allocate: it checks the status, takes the returned buffer
// out of the allocation table and releases anything else the host allocated
// since mark.
func hostBytes(call string, status uint32, mark uint64, addr, size uint32) ([]byte, error) {
	var b []byte
	err := hostError(call, status)
	if err == nil {
		b, err = mem.take(uintptr(addr), size)
	}
	mem.releaseSince(mark)
	return b, err
}
