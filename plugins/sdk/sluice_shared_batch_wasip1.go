//go:build wasip1

package sdk

import (
	"errors"
	"unsafe"
)

// noSharedBatches: the host lacks the batch functions (NOT_FOUND, once);
// batches then go key by key.
var noSharedBatches bool

// Get reads the batch's keys and returns one result per key, in order,
// valid until the next Get. It fails as a whole only when the host call
// fails; a missing key is a result with Found false.
func (b *SharedDataReads) Get() ([]SharedValue, error) {
	b.res = b.res[:0]
	if !noSharedBatches && len(b.offs) > 0 {
		res, err := CallForeignFunction("sluice.shared_data_get_many", b.args)
		switch {
		case err == nil:
			return decodeSharedValues(b.res, res, len(b.offs))
		case errors.Is(err, ErrNotFound):
			noSharedBatches = true
		default:
			return b.res, err
		}
	}
	for i := range b.offs {
		k := b.Key(i)
		v, cas, err := GetSharedData(unsafe.String(unsafe.SliceData(k), len(k)))
		switch {
		case err == nil:
			b.res = append(b.res, SharedValue{Value: v, CAS: cas, Found: true})
		case errors.Is(err, ErrNotFound):
			b.res = append(b.res, SharedValue{CAS: cas})
		default:
			return b.res, err
		}
	}
	return b.res, nil
}

// Set writes the batch and returns one error per write, in order (nil:
// written; else matching ErrCasMismatch or ErrInternalFailure, the store
// full), valid until the next Set. err is the host call's failure, and
// then nothing is known to be written.
func (b *SharedDataWrites) Set() (errs []error, err error) {
	b.errs = b.errs[:0]
	if !noSharedBatches && len(b.ws) > 0 {
		res, err := CallForeignFunction("sluice.shared_data_set_many", b.args)
		switch {
		case err == nil && len(res) == len(b.ws):
			for _, st := range res {
				b.errs = append(b.errs, hostError("sluice.shared_data_set_many", uint32(st)))
			}
			return b.errs, nil
		case err == nil:
			return b.errs, errors.New("sdk: sluice.shared_data_set_many answered " + utoa(uint64(len(res))) + " statuses for " + utoa(uint64(len(b.ws))) + " writes")
		case errors.Is(err, ErrNotFound):
			noSharedBatches = true
		default:
			return b.errs, err
		}
	}
	for i := range b.ws {
		k, v, cas := b.Write(i)
		b.errs = append(b.errs, SetSharedData(unsafe.String(unsafe.SliceData(k), len(k)), v, cas))
	}
	return b.errs, nil
}
