//! The ledger of accepted commands: one JSON line per command the gateway answered with a command
//! id, with what the checker expects of it. Written as the load runs, so a crashed run keeps it.

use std::{
    io::{BufRead, Write},
    path::Path,
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

use crate::api::Transport;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub command_id: String,
    pub kind: String,
    pub organization_id: String,
    /// The consumer whose `command_outcomes` records the outcome.
    pub consumer: String,
    pub transport: Transport,
    pub accepted_at_ms: i64,
    pub expect: serde_json::Value,
}

#[derive(Clone)]
pub struct Ledger {
    file: Arc<Mutex<std::io::BufWriter<std::fs::File>>>,
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Ledger {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::File::create(path)?;
        Ok(Self {
            file: Arc::new(Mutex::new(std::io::BufWriter::new(file))),
            entries: Arc::new(Mutex::new(Vec::new())),
        })
    }

    pub fn record(&self, entry: Entry) -> anyhow::Result<()> {
        let line = serde_json::to_string(&entry)?;
        {
            let mut file = self.file.lock().map_err(|_| anyhow::anyhow!("ledger lock"))?;
            writeln!(file, "{line}")?;
        }
        self.entries.lock().map_err(|_| anyhow::anyhow!("ledger lock"))?.push(entry);
        Ok(())
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        self.file.lock().map_err(|_| anyhow::anyhow!("ledger lock"))?.flush()?;
        Ok(())
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }

    pub fn read(path: &Path) -> anyhow::Result<Vec<Entry>> {
        let file = std::io::BufReader::new(std::fs::File::open(path)?);
        file.lines().map(|line| Ok(serde_json::from_str(&line?)?)).collect()
    }
}
