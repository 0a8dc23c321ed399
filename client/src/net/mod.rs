//! Routes, policy rules, addresses, the kill switch and resolv.conf: everything `up` changes
//! outside its own process, recorded in the state file before it is changed.
//!
//! [`plan`] decides what to install (pure, unit-tested); [`sys`] talks to the kernel;
//! [`Network`] keeps the two and the state file in step during a run; [`remove_leftovers`]
//! cleans up after a run that crashed.

pub mod item;
pub mod plan;
pub mod resolv;
pub mod sys;

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use grelay_proto::wire::control::AddressAssignment;

use self::item::{Device, Item};
use self::plan::Settings;
use self::sys::System;
use crate::state::{State, StateFile};

/// Where the reverse-path filter is told to honour packet marks.
const SRC_VALID_MARK: &str = "/proc/sys/net/ipv4/conf/all/src_valid_mark";

/// Where resolv.conf is and where its original is saved, when grelay writes it.
#[derive(Debug, Clone)]
pub struct ResolvConf {
    /// The file to replace (`/etc/resolv.conf`).
    pub target: PathBuf,
    /// Where to save the original.
    pub backup: PathBuf,
}

/// The system changes of one running `up`.
#[derive(Debug)]
pub struct Network {
    sys: System,
    state: StateFile,
    settings: Settings,
    tun: Device,
    resolv: Option<ResolvConf>,
    assigned: Vec<Item>,
}

impl Network {
    /// Starts with nothing installed; `state` is a fresh state file.
    pub fn new(
        sys: System,
        state: StateFile,
        settings: Settings,
        tun: Device,
        resolv: Option<ResolvConf>,
    ) -> Self {
        Self {
            sys,
            state,
            settings,
            tun,
            resolv,
            assigned: Vec::new(),
        }
    }

    /// The netlink handles.
    pub fn system(&self) -> &System {
        &self.sys
    }

    async fn install(&mut self, item: Item) -> Result<()> {
        self.state.record(&item)?;
        tracing::debug!("installing {}", item.describe());
        self.sys.apply(&item).await
    }

    async fn remove(&mut self, item: &Item) -> Result<()> {
        tracing::debug!("removing {}", item.describe());
        self.sys.undo(item).await?;
        self.state.forget(item)
    }

    /// Installs what does not depend on the gateway's answer: policy rules and exclusions,
    /// and in full-tunnel mode the fallbacks and the kill switch (from here on nothing leaves
    /// in clear).
    pub async fn prepare(&mut self) -> Result<()> {
        for item in plan::base(&self.settings) {
            self.install(item).await?;
        }
        if self.settings.full_tunnel {
            let path = PathBuf::from(SRC_VALID_MARK);
            let previous = std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .unwrap_or_default();
            if !previous.is_empty() && previous != "1" {
                self.state.record(&Item::Sysctl {
                    path: path.clone(),
                    previous,
                })?;
                item::set_sysctl(&path, "1")?;
            }
            let table = plan::nft_table(&self.settings.interface);
            self.state.record(&Item::Nftables { table })?;
            sys::run_nft(&plan::nft_ruleset(&self.settings))?;
        }
        Ok(())
    }

    /// Puts the assigned addresses and the routes into the TUN in place (replacing those of
    /// an earlier assignment); returns warnings about what the assignment leaves out.
    pub async fn configure(&mut self, assignment: &AddressAssignment) -> Result<Vec<String>> {
        let (wanted, warnings) = plan::assigned(&self.settings, &self.tun, assignment);
        let stale: Vec<Item> = self
            .assigned
            .iter()
            .rev()
            .filter(|i| !wanted.contains(i))
            .cloned()
            .collect();
        for item in &stale {
            self.remove(item).await?;
        }
        for item in &wanted {
            if !self.assigned.contains(item) {
                self.install(item.clone()).await?;
            }
        }
        self.assigned = wanted;
        if let Some(resolv) = self.resolv.take() {
            if self.settings.full_tunnel && !self.settings.dns.is_empty() {
                self.state.record(&Item::ResolvConf {
                    target: resolv.target.clone(),
                    backup: resolv.backup.clone(),
                })?;
                resolv::install(
                    &resolv.target,
                    &resolv.backup,
                    &self.settings.interface,
                    &self.settings.dns,
                )?;
            }
        }
        Ok(warnings)
    }

    /// Removes everything recorded, newest first, going on past failures; deletes the state
    /// file when all of it is gone.
    pub async fn teardown(mut self) -> Result<()> {
        let items: Vec<Item> = self.state.items().to_vec();
        let mut failures = Vec::new();
        for item in items.iter().rev() {
            if let Err(e) = self.remove(item).await {
                failures.push(format!("{e:#}"));
            }
        }
        if failures.is_empty() {
            self.state.delete()
        } else {
            Err(anyhow!(
                "could not remove everything (the state file keeps the rest for `grelay down`): {}",
                failures.join("; ")
            ))
        }
    }
}

/// Removes the leftovers of a crashed run listed in `state`, newest first; returns the
/// items that could not be removed, with why.
pub async fn remove_leftovers(sys: &System, state: &State) -> Vec<(Item, anyhow::Error)> {
    let mut failed = Vec::new();
    for item in state.items.iter().rev() {
        tracing::info!("removing leftover {}", item.describe());
        if let Err(e) = sys.undo(item).await {
            failed.push((item.clone(), e));
        }
    }
    failed
}
