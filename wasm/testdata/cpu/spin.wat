(module
  ;; spin: a well-behaved but CPU-bound guest for the deadline tests.
  ;; proxy_on_request_headers counts down num_headers × 2000 loop iterations
  ;; (each loop back-edge is a wazero termination check), then returns
  ;; CONTINUE. Regenerate: wat2wasm spin.wat -o spin.wasm (Debian: wabt).
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  ;; Bump allocator over 4096..65535; 0 when the request does not fit.
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (if (i32.gt_u (local.get $size)
                  (i32.sub (i32.mul (memory.size) (i32.const 65536)) (local.get $p)))
      (then (return (i32.const 0))))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $p) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (local.get $p))
  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
    (if (local.get $parent) (then (global.set $heap (i32.const 4096)))))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (local $i i32)
    (local.set $i (i32.mul (local.get $n) (i32.const 2000)))
    (block $done
      (loop $spin
        (br_if $done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (br $spin)))
    (i32.const 0))
)
