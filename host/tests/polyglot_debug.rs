use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

struct S { ctx: wasmtime_wasi::WasiCtx, table: wasmtime::component::ResourceTable }
impl wasmtime_wasi::WasiView for S {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> { wasmtime_wasi::WasiCtxView { ctx: &mut self.ctx, table: &mut self.table } }
}

#[test]
fn debug_link() {
    let engine = Engine::new(Config::new().wasm_component_model(true)).unwrap();
    let mut linker: Linker<S> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    for f in ["/tmp/js.wasm", "/tmp/py.wasm"] {
        let c = Component::from_file(&engine, f).unwrap();
        let mut linker = linker.clone();
        linker.define_unknown_imports_as_traps(&c).unwrap();
        match linker.instantiate_pre(&c) { Ok(_) => println!("{f}: ok"), Err(e) => println!("{f}: {e:#}") }
    }
}
