//! {{name}}: a crmsync mapper plugin. Maps a Salesforce Lead or Contact to an
//! ActiveCampaign contact; change `map` to your rules and `fixtures.jsonl` to
//! match.

use crmsync_sdk::prelude::*;

#[derive(Default)]
pub struct Plugin;

impl Mapper for Plugin {
    /// Your config section (JSON) parsed into a type: `NoConfig` takes none.
    type Config = NoConfig;

    fn map(&self, _ctx: &Context<NoConfig>, record: Record) -> Result<Record, RecordError> {
        let mut out = Record::new(System::ActiveCampaign, "contact");
        if let Some(first) = record.text("FirstName") {
            out.set("firstName", first.trim());
        }
        let last = record
            .text("LastName")
            .ok_or_else(|| RecordError::new("missing-field", "LastName is required").on("LastName"))?;
        out.set("lastName", last.trim());
        let email = record.text("Email").unwrap_or_default().trim().to_lowercase();
        if !email.contains('@') {
            return Err(RecordError::new("invalid-email", format!("{email:?} is not an email address")).on("Email"));
        }
        out.set("email", email);
        Ok(out)
    }
}

crmsync_sdk::export_mapper!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use crmsync_sdk::testing::Harness;

    /// Writes {{name}}.schema.json from `NoConfig`: `crmsync plugin install` ships
    /// it with the version, and every config is checked against it at install
    /// and activation.
    #[test]
    fn the_config_schema_is_written() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/{{name}}.schema.json");
        std::fs::write(path, crmsync_sdk::testing::config_schema::<NoConfig>()).unwrap();
    }

    /// fixtures.jsonl, run natively by the runner `crmsync plugin test` uses.
    #[test]
    fn the_fixtures_pass() {
        crmsync_sdk::testing::mapper_fixtures(&Plugin, concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures.jsonl"));
    }

    #[test]
    fn a_missing_last_name_is_refused() {
        let lead = Record::new(System::Salesforce, "Lead").with("Email", "a@example.com");
        let err = Harness::new("{}").map(&Plugin, vec![lead]).remove(0).unwrap_err();
        assert_eq!((err.code.as_str(), err.field.as_deref()), ("missing-field", Some("LastName")));
    }
}
