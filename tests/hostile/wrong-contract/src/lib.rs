//! A mapper plugin built for `crmsync:plugin@2.0.0`, which this host does not
//! support: loading it must fail with a message naming both versions.

wit_bindgen::generate!({ path: "wit", world: "mapper-plugin" });

struct Plugin;

impl exports::crmsync::plugin::mapper::Guest for Plugin {
    fn map_records(_config: String, records: Vec<String>) -> Vec<String> {
        records
    }
}

export!(Plugin);
