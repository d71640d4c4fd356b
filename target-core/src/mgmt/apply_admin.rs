//! `--mode account`, `portal`, `lld`, `session`, `connection`.

use super::{show, MgmtError, Request, Response, StoreOpener};
use crate::registry::{parse_portal, AccountBinding, Tid};
use crate::Core;

pub(super) fn apply(
    core: &Core,
    req: Request,
    opener: &dyn StoreOpener,
) -> Result<Response, MgmtError> {
    let reg = &core.registry;
    match req {
        Request::AccountNew { user, password } => {
            if user.is_empty() || password.is_empty() {
                return Err(MgmtError::InvalidRequest);
            }
            reg.accounts.add(&user, &password)?;
            Ok(Response::ok())
        }
        Request::AccountDelete { user } => {
            reg.accounts.remove(&user)?;
            for t in reg.targets() {
                t.with_accounts(|b| b.forget(&user));
            }
            Ok(Response::ok())
        }
        Request::AccountShow => Ok(show::account_show(&reg.accounts.list())),
        Request::AccountBind {
            tid,
            user,
            outgoing,
        } => with_binding(core, tid, &user, |b| b.bind(&user, outgoing)),
        Request::AccountUnbind {
            tid,
            user,
            outgoing,
        } => with_binding(core, tid, &user, |b| b.unbind(&user, outgoing)),
        Request::PortalNew { portal } => {
            let addr = parse_portal(&portal).ok_or(MgmtError::InvalidRequest)?;
            if reg.portals.contains(addr) {
                return Err(MgmtError::InvalidRequest);
            }
            // tgt answers a failed bind with "invalid request" too.
            let bound = opener.listen(addr).map_err(|_| MgmtError::InvalidRequest)?;
            reg.portals.add(bound);
            Ok(Response::ok())
        }
        Request::PortalDelete { portal } => {
            let addr = parse_portal(&portal).ok_or(MgmtError::InvalidRequest)?;
            if !reg.portals.remove(addr) {
                return Err(MgmtError::InvalidRequest);
            }
            opener.unlisten(addr);
            Ok(Response::ok())
        }
        Request::PortalShow => Ok(show::portal_show(&reg.portals.list())),
        Request::LldStart => {
            if reg.lld_stopped() {
                for p in reg.portals.list() {
                    // A portal that cannot be bound again is dropped from the list.
                    if opener.listen(p).is_err() {
                        reg.portals.remove(p);
                    }
                }
                reg.set_lld_stopped(false);
            }
            Ok(Response::ok())
        }
        Request::LldStop => {
            // tgt: a driver with targets is busy.
            if !reg.targets().is_empty() {
                return Err(MgmtError::DriverActive);
            }
            if !reg.lld_stopped() {
                for p in reg.portals.list() {
                    opener.unlisten(p);
                }
                reg.set_lld_stopped(true);
            }
            Ok(Response::ok())
        }
        Request::LldShow => Ok(show::lld_show(reg.lld_stopped(), &reg.targets())),
        Request::SessionShow { tid, sid } => {
            let t = reg.target(tid).ok_or(MgmtError::NoTarget)?;
            let sessions: Vec<_> = t
                .sessions()
                .into_iter()
                .filter(|s| sid.is_none_or(|want| u64::from(s.tsih) == want))
                .collect();
            if sid.is_some() && sessions.is_empty() {
                return Err(MgmtError::NoSession);
            }
            Ok(show::session_show(&sessions))
        }
        Request::SessionDelete { tid, sid } => {
            let t = reg.target(tid).ok_or(MgmtError::NoTarget)?;
            let s = t.session_by_tsih(sid).ok_or(MgmtError::NoSession)?;
            t.request_logout(s.sid)?;
            Ok(Response::ok())
        }
        Request::ConnectionShow { tid, .. } => {
            let t = reg.target(tid).ok_or(MgmtError::NoTarget)?;
            Ok(show::connection_show(&t.sessions()))
        }
        Request::ConnectionDelete { tid, sid, cid } => {
            // tgt's conn_close_admin: no session with that TSIH is NoSession, a
            // session without that cid NoConnection.
            let t = reg.target(tid).ok_or(MgmtError::NoTarget)?;
            let s = t.session_by_tsih(sid).ok_or(MgmtError::NoSession)?;
            if !s.connections.iter().any(|c| u32::from(c.cid) == cid) {
                return Err(MgmtError::NoConnection);
            }
            // The session's last connection: closing it ends the session. One of
            // several (MC/S): only that connection closes; it is woken directly and
            // its tasks end (ErrorRecoveryLevel 0), the others go on.
            let shared = core.sessions.shared(iscsi_proto::Tsih(s.tsih));
            match shared.filter(|_| s.connections.len() > 1) {
                Some(sh) => {
                    if let Some(Some(w)) =
                        sh.request_close(cid as u16, "closed by the administrator", false)
                    {
                        w.wake();
                    }
                }
                None => t.request_logout(s.sid)?,
            }
            Ok(Response::ok())
        }
        Request::SessionStat { tid, sid } => {
            let t = reg.target(tid).ok_or(MgmtError::NoTarget)?;
            let s = t.session_by_tsih(sid).ok_or(MgmtError::NoSession)?;
            Ok(super::stat::session_stat(&t, &s))
        }
        Request::ConnectionStat { tid, sid, cid } => {
            let t = reg.target(tid).ok_or(MgmtError::NoTarget)?;
            let s = t.session_by_tsih(sid).ok_or(MgmtError::NoSession)?;
            let c = s
                .connections
                .iter()
                .find(|c| u32::from(c.cid) == cid)
                .ok_or(MgmtError::NoConnection)?;
            Ok(super::stat::connection_stat(&s, c))
        }
        _ => Err(MgmtError::UnsupportedOperation),
    }
}

/// tgt's `account_ctl`: the target (or discovery when `tid` is `None`) first, then
/// the account, then the binding change.
fn with_binding(
    core: &Core,
    tid: Option<Tid>,
    user: &str,
    f: impl FnOnce(&mut AccountBinding) -> Result<(), MgmtError>,
) -> Result<Response, MgmtError> {
    let reg = &core.registry;
    let target = match tid {
        Some(tid) => Some(reg.target(tid).ok_or(MgmtError::NoTarget)?),
        None => None,
    };
    if reg.account(user).is_none() {
        return Err(MgmtError::NoUser);
    }
    match target {
        Some(t) => t.with_accounts(f)?,
        None => reg.accounts.with_discovery(f)?,
    }
    Ok(Response::ok())
}
