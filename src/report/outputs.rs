//! `outputs.json`: the workflow's `outputs`, rendered after a successful run (what a later
//! stage reads: the image reference staging proved, the pull request's link). Written only
//! when the run produced them, so its presence says the run succeeded.

use std::io;
use std::path::PathBuf;

use super::Reporter;
use super::atomic_file::write_atomically;
use crate::engine::events::Event;

pub struct OutputsFile {
    path: PathBuf,
}

impl OutputsFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

impl Reporter for OutputsFile {
    fn name(&self) -> &str {
        "outputs.json"
    }

    fn on_event(&mut self, event: &Event) -> io::Result<()> {
        let Event::OutputsRendered { outputs } = event else {
            return Ok(());
        };
        let mut json = serde_json::to_vec_pretty(outputs)?;
        json.push(b'\n');
        write_atomically(&self.path, &json)
    }
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;

    #[test]
    fn writes_the_outputs_as_one_json_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outputs.json");
        let mut file = OutputsFile::new(&path);
        file.on_event(&Event::IterationStarted { iteration: 1 })
            .unwrap();
        assert!(!path.exists());
        let outputs = IndexMap::from([("image".to_owned(), "acr.io/app:0f3a".to_owned())]);
        file.on_event(&Event::OutputsRendered { outputs }).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(written, serde_json::json!({"image": "acr.io/app:0f3a"}));
    }
}
