//! The security stage: `AuthMethod` per target policy and CHAP (RFC 7143 §6.3.1,
//! §12.1.3), one-way or mutual, with accounts from the registry.

use super::Connection;
use crate::registry::Account;
use iscsi_proto::login::chap::{
    constant_time_eq, select_algorithm, ChapAlgorithm, ChapChallenge, ChapError,
};
use iscsi_proto::login::LoginStatus;
use iscsi_proto::text::Pair;

/// Shortest CHAP secret accepted: RFC 7143 §12.1.3 asks for at least 96 bits of
/// secret when CHAP is used without IPsec, and a short secret falls to a dictionary
/// attack on one captured exchange.
pub(super) const MIN_SECRET_LEN: usize = 12;

/// Where authentication stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum AuthState {
    /// Nothing agreed yet.
    #[default]
    Start,
    /// `AuthMethod=None` agreed (or no authentication required).
    NoneAgreed,
    /// `AuthMethod=CHAP` agreed; waiting for `CHAP_A`.
    ChapWaitAlgorithm,
    /// Challenge sent; waiting for `CHAP_N`/`CHAP_R`.
    ChapWaitResponse(ChapChallenge),
    /// The initiator proved itself (and we answered its challenge if it sent one).
    Done,
}

impl AuthState {
    /// Whether the security stage may be left.
    pub(super) fn passed(&self, required: bool) -> bool {
        match self {
            AuthState::Done => true,
            AuthState::NoneAgreed | AuthState::Start => !required,
            _ => false,
        }
    }
}

/// The accounts the login must check: who may log in, and who we answer as.
#[derive(Debug, Clone, Default)]
pub(super) struct AuthPolicy {
    /// Incoming user names; empty means no authentication is required.
    pub(super) incoming: Vec<String>,
    /// Outgoing (mutual CHAP) user name.
    pub(super) outgoing: Option<String>,
}

impl AuthPolicy {
    pub(super) fn required(&self) -> bool {
        !self.incoming.is_empty()
    }
}

fn chap_status(e: &ChapError) -> LoginStatus {
    match e {
        ChapError::Malformed(_) => LoginStatus::INITIATOR_ERROR,
        _ => LoginStatus::AUTH_FAILURE,
    }
}

impl Connection {
    /// Answer `AuthMethod`: CHAP when the target requires it, None otherwise; the first
    /// of the initiator's list we accept (a list key, RFC 7143 §6.2.2).
    pub(super) fn auth_method(&mut self, offer: &str, out: &mut Vec<Pair>) {
        let required = self.login.policy.required();
        let pick = offer.split(',').find(|m| match *m {
            "CHAP" => required,
            "None" => !required,
            _ => false,
        });
        match pick {
            Some("CHAP") => {
                self.login.auth = AuthState::ChapWaitAlgorithm;
                out.push(("AuthMethod".into(), "CHAP".into()));
            }
            Some(_) => {
                self.login.auth = AuthState::NoneAgreed;
                out.push(("AuthMethod".into(), "None".into()));
            }
            // Nothing acceptable: the login fails when it tries to leave the stage.
            None => out.push(("AuthMethod".into(), "Reject".into())),
        }
    }

    /// Handle the `CHAP_*` keys of one request. `Err` fails the login.
    pub(super) fn chap_keys(
        &mut self,
        pairs: &[Pair],
        out: &mut Vec<Pair>,
    ) -> Result<(), LoginStatus> {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(pk, _)| pk == k)
                .map(|(_, v)| v.as_str())
        };
        match std::mem::take(&mut self.login.auth) {
            AuthState::ChapWaitAlgorithm => {
                let Some(offer) = get("CHAP_A") else {
                    return Err(LoginStatus::AUTH_FAILURE);
                };
                let algorithm =
                    select_algorithm(offer, &ChapAlgorithm::ALL).map_err(|e| chap_status(&e))?;
                let mut id = [0u8; 1];
                self.core.random_bytes(&mut id);
                // At least 16 bytes, and as long as the digest (RFC 1994 §2.1: the
                // challenge should be unpredictable and not shorter than the hash).
                let mut challenge = vec![0u8; algorithm.digest_len().max(16)];
                self.core.random_bytes(&mut challenge);
                let c = ChapChallenge {
                    algorithm,
                    id: id[0],
                    challenge,
                };
                out.extend(c.keys());
                self.login.auth = AuthState::ChapWaitResponse(c);
                Ok(())
            }
            AuthState::ChapWaitResponse(c) => {
                let accounts = self.login.policy.incoming.clone();
                let registry = &self.core.registry;
                let secret_of = |name: &str| -> Option<Vec<u8>> {
                    if !accounts.iter().any(|u| u == name) {
                        return None;
                    }
                    let a = registry.account(name)?;
                    (a.password.len() >= MIN_SECRET_LEN).then(|| a.password.into_bytes())
                };
                let outgoing: Option<Account> = self
                    .login
                    .policy
                    .outgoing
                    .as_deref()
                    .and_then(|u| registry.account(u))
                    .filter(|a| a.password.len() >= MIN_SECRET_LEN);
                let (user, keys) = c
                    .verify(
                        pairs,
                        secret_of,
                        outgoing
                            .as_ref()
                            .map(|a| (a.user.as_str(), a.password.as_bytes())),
                    )
                    .map_err(|e| chap_status(&e))?;
                // RFC 7143 §12.1.3: one secret must not serve both directions.
                if let (Some(o), Some(i)) = (&outgoing, registry.account(&user)) {
                    if !keys.is_empty()
                        && constant_time_eq(o.password.as_bytes(), i.password.as_bytes())
                    {
                        return Err(LoginStatus::AUTH_FAILURE);
                    }
                }
                out.extend(keys);
                self.login.auth = AuthState::Done;
                Ok(())
            }
            // CHAP keys before AuthMethod=CHAP was agreed, or after it finished.
            _ => Err(LoginStatus::INITIATOR_ERROR),
        }
    }
}
