package sdk

import "testing"

// TestSetPluginContext: the factory gets each plugin context's ID, the VM
// start is accepted, and a nil factory panics at registration.
func TestSetPluginContext(t *testing.T) {
	saved := dispatch.vm
	t.Cleanup(func() { dispatch.vm = saved })
	rec := &recorder{}
	SetPluginContext(func(id uint32) PluginContext { return &testPlugin{rec: rec, id: id} })
	if !dispatch.vm.OnVMStart(0) {
		t.Error("OnVMStart refused")
	}
	pc, ok := dispatch.vm.NewPluginContext(7).(*testPlugin)
	if !ok || pc.id != 7 {
		t.Fatalf("NewPluginContext(7) = %#v, want the factory's plugin for context 7", pc)
	}
	defer func() {
		if recover() == nil {
			t.Error("SetPluginContext(nil) did not panic")
		}
	}()
	SetPluginContext(nil)
}
