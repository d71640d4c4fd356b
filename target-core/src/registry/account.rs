//! CHAP accounts (`tgtadm --mode account`): users with passwords, and which of them
//! a target (or discovery, tgt's "global target") accepts or answers with.
//!
//! The login code reads them through [`Registry::account`](super::Registry::account),
//! [`Target::incoming_users`](super::Target::incoming_users) and
//! [`Target::outgoing_user`](super::Target::outgoing_user); discovery sessions use
//! [`Registry::discovery_accounts`](super::Registry::discovery_accounts).

use crate::mgmt::MgmtError;
use serde::{Deserialize, Serialize};
use std::sync::RwLock;

/// One CHAP account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// CHAP name.
    pub user: String,
    /// CHAP secret.
    pub password: String,
}

/// Which accounts a target accepts (incoming: the initiator proves itself) and the
/// one it answers with for mutual CHAP (outgoing).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountBinding {
    /// Incoming user names, in bind order.
    pub incoming: Vec<String>,
    /// The outgoing user name, at most one.
    pub outgoing: Option<String>,
}

impl AccountBinding {
    /// tgt's `account_ctl` with `bind`: an incoming user bound twice is
    /// `UserExists`, a second outgoing user `OutAccountExists`.
    pub fn bind(&mut self, user: &str, outgoing: bool) -> Result<(), MgmtError> {
        if outgoing {
            if self.outgoing.is_some() {
                return Err(MgmtError::OutAccountExists);
            }
            self.outgoing = Some(user.to_string());
        } else {
            if self.incoming.iter().any(|u| u == user) {
                return Err(MgmtError::UserExists);
            }
            self.incoming.push(user.to_string());
        }
        Ok(())
    }

    /// tgt's `account_ctl` without `bind`: a user not bound that way is `NoUser`.
    pub fn unbind(&mut self, user: &str, outgoing: bool) -> Result<(), MgmtError> {
        if outgoing {
            if self.outgoing.as_deref() != Some(user) {
                return Err(MgmtError::NoUser);
            }
            self.outgoing = None;
        } else {
            let pos = self
                .incoming
                .iter()
                .position(|u| u == user)
                .ok_or(MgmtError::NoUser)?;
            self.incoming.remove(pos);
        }
        Ok(())
    }

    /// Forget `user` both ways (the account was deleted).
    pub fn forget(&mut self, user: &str) {
        self.incoming.retain(|u| u != user);
        if self.outgoing.as_deref() == Some(user) {
            self.outgoing = None;
        }
    }
}

/// Every account of the daemon, newest first (tgt lists them that way).
#[derive(Debug, Default)]
pub struct Accounts {
    list: RwLock<Vec<Account>>,
    discovery: RwLock<AccountBinding>,
}

impl Accounts {
    /// Add an account; `UserExists` when the name is taken.
    pub fn add(&self, user: &str, password: &str) -> Result<(), MgmtError> {
        let mut list = self.list.write().expect("account lock poisoned");
        if list.iter().any(|a| a.user == user) {
            return Err(MgmtError::UserExists);
        }
        list.insert(
            0,
            Account {
                user: user.to_string(),
                password: password.to_string(),
            },
        );
        Ok(())
    }

    /// Add `user`, or change its password when it exists (config reload).
    pub fn upsert(&self, user: &str, password: &str) {
        let mut list = self.list.write().expect("account lock poisoned");
        match list.iter_mut().find(|a| a.user == user) {
            Some(a) => a.password = password.to_string(),
            None => list.insert(
                0,
                Account {
                    user: user.to_string(),
                    password: password.to_string(),
                },
            ),
        }
    }

    /// Remove an account; `NoUser` when there is none. The caller unbinds it from
    /// every target.
    pub fn remove(&self, user: &str) -> Result<(), MgmtError> {
        let mut list = self.list.write().expect("account lock poisoned");
        let pos = list
            .iter()
            .position(|a| a.user == user)
            .ok_or(MgmtError::NoUser)?;
        list.remove(pos);
        self.discovery
            .write()
            .expect("account lock poisoned")
            .forget(user);
        Ok(())
    }

    /// The account named `user`.
    pub fn get(&self, user: &str) -> Option<Account> {
        self.list
            .read()
            .expect("account lock poisoned")
            .iter()
            .find(|a| a.user == user)
            .cloned()
    }

    /// Every account, newest first.
    pub fn list(&self) -> Vec<Account> {
        self.list.read().expect("account lock poisoned").clone()
    }

    /// The accounts bound for discovery sessions (tgt's global target).
    pub fn discovery(&self) -> AccountBinding {
        self.discovery
            .read()
            .expect("account lock poisoned")
            .clone()
    }

    /// Change the discovery binding.
    pub fn with_discovery<R>(&self, f: impl FnOnce(&mut AccountBinding) -> R) -> R {
        f(&mut self.discovery.write().expect("account lock poisoned"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_remove_and_bind_like_tgt() {
        let a = Accounts::default();
        a.add("alice", "s1").unwrap();
        a.add("bob", "s2").unwrap();
        assert_eq!(a.add("alice", "x"), Err(MgmtError::UserExists));
        let names: Vec<_> = a.list().into_iter().map(|a| a.user).collect();
        assert_eq!(names, ["bob", "alice"]);
        let mut b = AccountBinding::default();
        b.bind("alice", false).unwrap();
        assert_eq!(b.bind("alice", false), Err(MgmtError::UserExists));
        b.bind("bob", true).unwrap();
        assert_eq!(b.bind("alice", true), Err(MgmtError::OutAccountExists));
        assert_eq!(b.unbind("bob", false), Err(MgmtError::NoUser));
        b.unbind("bob", true).unwrap();
        b.forget("alice");
        assert_eq!(b, AccountBinding::default());
        assert_eq!(a.remove("zed"), Err(MgmtError::NoUser));
        a.remove("alice").unwrap();
        assert!(a.get("alice").is_none());
    }
}
