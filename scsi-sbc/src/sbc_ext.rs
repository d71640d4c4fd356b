//! The SBC/SPC commands beyond plain READ/WRITE: verify, pre-fetch, write same, unmap,
//! GET LBA STATUS, COMPARE AND WRITE, ORWRITE, WRITE ATOMIC, reservations, medium
//! removal, defect data, format and sanitize.

use crate::asc;
use crate::block_op::{decode_extents, BlockOp};
use crate::cdb::{Cdb, Transfer};
use crate::cdb_ext::ExtCdb as E;
use crate::dispatch::{check_writable, respond, Outcome, Plan, ScsiStatus};
use crate::lu::{LuConfig, LuContext};
use crate::pr::PrError;
use crate::rw;
use crate::sense::{Sense, SenseKey};
use crate::state::{LuState, ModeValues};
use bytes::Bytes;

/// MAXIMUM COMPARE AND WRITE LENGTH (Block Limits VPD), in blocks.
pub(crate) const MAX_CAW_BLOCKS: u8 = 128;
/// MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT.
pub(crate) const MAX_UNMAP_DESCRIPTORS: u32 = 256;
/// MAXIMUM UNMAP LBA COUNT (libiscsi accepts at most 1 Mi blocks).
pub(crate) const MAX_UNMAP_BLOCKS: u32 = 0x10_0000;

/// MAXIMUM WRITE SAME LENGTH, in blocks: the transfer limit, since initiators (and
/// libiscsi) write that many blocks in one WRITE to check the result.
pub(crate) fn max_write_same_blocks(lu: &LuConfig) -> u64 {
    u64::from(rw::max_transfer_blocks(lu))
}

fn range(lu: &LuConfig, lba: u64, blocks: u64) -> Result<(u64, u64), Sense> {
    match lba.checked_add(blocks) {
        Some(end) if end <= lu.num_blocks => {}
        _ => return Err(Sense::lba_out_of_range()),
    }
    let bs = u64::from(lu.block_size);
    let off = lba.checked_mul(bs).ok_or_else(Sense::lba_out_of_range)?;
    let len = blocks.checked_mul(bs).ok_or_else(Sense::lba_out_of_range)?;
    Ok((off, len))
}

/// The byte range of a WRITE SAME of `blocks` at `lba`. NUMBER OF LOGICAL BLOCKS 0
/// means through the last LBA (SBC-4 5.50; the LU reports WSNZ=0), and either way more
/// than MAXIMUM WRITE SAME LENGTH is INVALID FIELD IN CDB; an LBA past the end is
/// LBA OUT OF RANGE first.
fn write_same_range(lu: &LuConfig, lba: u64, blocks: u32) -> Result<(u64, u64), Sense> {
    let blocks = match blocks {
        0 if lba < lu.num_blocks => lu.num_blocks - lba,
        0 => return Err(Sense::lba_out_of_range()),
        n => u64::from(n),
    };
    let r = range(lu, lba, blocks)?;
    if blocks > max_write_same_blocks(lu) {
        return Err(Sense::invalid_field_in_cdb());
    }
    Ok(r)
}

fn transfer_len(lu: &LuConfig, t: &Transfer) -> Result<u64, Sense> {
    rw::prepare_read(lu, t)?;
    Ok(u64::from(t.blocks) * u64::from(lu.block_size))
}

fn param_error() -> Sense {
    Sense::illegal_request(asc::INVALID_FIELD_IN_PARAMETER_LIST)
}

fn length_error() -> Sense {
    Sense::illegal_request(asc::PARAMETER_LIST_LENGTH_ERROR)
}

fn good() -> Result<Plan, Sense> {
    Ok(Plan::Done(Outcome::good(Bytes::new())))
}

/// Checks before data-out is solicited; the number of data-out bytes.
pub(crate) fn prepare(e: &E, lu: &LuConfig, mode: &ModeValues) -> Result<u64, Sense> {
    Ok(match *e {
        E::ModeSelect { param_len, .. } => u64::from(param_len),
        E::Verify {
            lba,
            blocks,
            bytchk,
        } => {
            range(lu, lba, u64::from(blocks))?;
            let t = Transfer {
                lba,
                blocks,
                dpo: false,
                fua: false,
            };
            match bytchk {
                0 => 0,
                1 => transfer_len(lu, &t)?,
                _ if blocks == 0 => 0,
                _ => {
                    // One block comes in, but the comparison covers the whole range
                    // and is held as one buffer: the range is bounded like any other
                    // transfer (MAXIMUM TRANSFER LENGTH), or a VERIFY of a large LU
                    // would make the target allocate the LU's size.
                    transfer_len(lu, &t)?;
                    u64::from(lu.block_size)
                }
            }
        }
        E::WriteVerify(t) | E::OrWrite(t) => {
            check_writable(lu, mode)?;
            rw::prepare_write(lu, &t)?
        }
        E::WriteAtomic(t) => {
            check_writable(lu, mode)?;
            rw::prepare_write(lu, &t)?
        }
        E::WriteSame {
            lba,
            blocks,
            ndob,
            unmap,
            ..
        } => {
            check_writable(lu, mode)?;
            if unmap && !lu.thin_provisioning {
                // The UNMAP bit: byte 1 bit 3 of WRITE SAME(10/16).
                return Err(Sense::invalid_cdb_field(1, 3));
            }
            write_same_range(lu, lba, blocks)?;
            if ndob {
                0
            } else {
                u64::from(lu.block_size)
            }
        }
        E::Unmap { param_len } => {
            if !lu.thin_provisioning {
                return Err(Sense::invalid_opcode());
            }
            check_writable(lu, mode)?;
            u64::from(param_len)
        }
        E::CompareAndWrite { lba, blocks, .. } => {
            check_writable(lu, mode)?;
            // Zero blocks is no error in SBC-3 5.2, but an initiator sending 256 blocks
            // wraps the 8-bit field to 0 (libiscsi compareandwrite_simple expects
            // INVALID FIELD IN CDB there), so it is refused like an oversize length.
            if blocks == 0 || blocks > MAX_CAW_BLOCKS {
                return Err(Sense::invalid_field_in_cdb());
            }
            range(lu, lba, u64::from(blocks))?;
            2 * u64::from(blocks) * u64::from(lu.block_size)
        }
        E::FormatUnit { fmtdata, longlist } => {
            check_writable(lu, mode)?;
            match (fmtdata, longlist) {
                (false, _) => 0,
                (true, false) => 4,
                (true, true) => 8,
            }
        }
        E::Sanitize { param_len, .. } => {
            check_writable(lu, mode)?;
            u64::from(param_len)
        }
        E::PrOut { param_len, .. } => u64::from(param_len),
        E::ExtendedCopy { param_len } => u64::from(param_len),
        _ => 0,
    })
}

/// Run one command.
pub(crate) fn plan(
    e: &E,
    lu: &LuConfig,
    ctx: &LuContext<'_>,
    state: &mut LuState,
    data: Bytes,
) -> Result<Plan, Sense> {
    let mode = state.mode;
    let wce = mode.wce(lu);
    let nexus = ctx.nexus.id;
    match *e {
        E::ModeSelect { .. } => {
            crate::mode::mode_select(e, lu, ctx, state, &data)?;
            good()
        }
        E::PreFetch { lba, blocks } => {
            range(lu, lba, u64::from(blocks))?;
            good()
        }
        E::Verify {
            lba,
            blocks,
            bytchk,
        } => {
            let len = prepare(e, lu, &mode)?;
            let (offset, full) = range(lu, lba, u64::from(blocks))?;
            if bytchk == 0 || blocks == 0 || data.is_empty() || len == 0 {
                return good();
            }
            let expect = if bytchk == 3 {
                // One block compared with every block of the range.
                let block = data.slice(..data.len().min(lu.block_size as usize));
                let mut v = Vec::with_capacity(full as usize);
                while (v.len() as u64) < full {
                    v.extend_from_slice(&block);
                }
                v.truncate(full as usize);
                Bytes::from(v)
            } else {
                data.slice(..data.len().min(full as usize))
            };
            Ok(Plan::Io(BlockOp::Compare {
                offset,
                data: expect,
            }))
        }
        E::WriteVerify(mut t) => {
            prepare(e, lu, &mode)?;
            // Written to the medium, then verified there (SBC-4 5.49): durable before
            // GOOD, like every write while the write cache is off.
            t.fua = true;
            rw::write(lu, &t, data)
        }
        E::OrWrite(t) => {
            prepare(e, lu, &mode)?;
            match rw::write(lu, &t, data)? {
                Plan::Io(BlockOp::Write { offset, data, fua }) => Ok(Plan::Io(BlockOp::OrWrite {
                    offset,
                    data,
                    fua: fua || !wce,
                })),
                other => Ok(other),
            }
        }
        E::WriteAtomic(mut t) => {
            prepare(e, lu, &mode)?;
            t.fua |= !wce;
            rw::write(lu, &t, data)
        }
        E::WriteSame {
            lba,
            blocks,
            unmap,
            ndob,
        } => {
            prepare(e, lu, &mode)?;
            let (offset, len) = write_same_range(lu, lba, blocks)?;
            let bs = lu.block_size as usize;
            let pattern = if ndob {
                Bytes::from(vec![0u8; bs])
            } else if data.len() < bs {
                return Err(Sense::invalid_field_in_cdb());
            } else {
                data.slice(..bs)
            };
            // UNMAP=1 (allowed on thin LUs only, see `prepare`): deallocate, whatever
            // the block holds, as tgt and Linux LIO do; the LU reports LBPRZ=1, so the
            // range then reads as zeros (libiscsi's UnmapUntilEnd sends 0xFF blocks
            // with UNMAP and expects zeros back).
            if unmap {
                return Ok(Plan::Io(BlockOp::Unmap {
                    ranges: vec![(offset, len)],
                }));
            }
            Ok(Plan::Io(BlockOp::WriteSame {
                offset,
                len,
                pattern,
                fua: !wce,
            }))
        }
        E::Unmap { param_len } => {
            prepare(e, lu, &mode)?;
            unmap(lu, param_len, &data)
        }
        E::GetLbaStatus { lba, .. } => {
            if !lu.thin_provisioning {
                return Err(Sense::invalid_opcode());
            }
            if lba >= lu.num_blocks {
                return Err(Sense::lba_out_of_range());
            }
            let (offset, len) = range(lu, lba, lu.num_blocks - lba)?;
            Ok(Plan::Io(BlockOp::Provisioning { offset, len }))
        }
        E::CompareAndWrite { lba, blocks, fua } => {
            let need = prepare(e, lu, &mode)? as usize;
            if data.len() != need {
                return Err(Sense::invalid_field_in_cdb());
            }
            let (offset, _) = range(lu, lba, u64::from(blocks))?;
            let half = need / 2;
            Ok(Plan::Io(BlockOp::CompareAndWrite {
                offset,
                compare: data.slice(..half),
                data: data.slice(half..),
                fua: fua || !wce,
            }))
        }
        E::ReadDefectData {
            twelve,
            flags,
            alloc_len,
        } => {
            // No defects: just the header, echoing the list format asked for.
            let d = if twelve {
                vec![0, flags & 0x1f, 0, 0, 0, 0, 0, 0]
            } else {
                vec![0, flags & 0x1f, 0, 0]
            };
            respond(d, alloc_len)
        }
        E::StartStopUnit {
            power_condition,
            loej,
            start,
        } => {
            if power_condition != 0 || !loej {
                return good();
            }
            // SBC-3 5.25: with removal prevented, LOEJ=1 is refused whether it would
            // eject or load (libiscsi PreventAllow.Eject loads with PREVENT set too).
            if !state.prevent.is_empty() {
                return Err(Sense::illegal_request(asc::MEDIUM_REMOVAL_PREVENTED));
            }
            if lu.removable {
                state.ejected = !start;
            }
            good()
        }
        E::PreventAllow { prevent } => {
            match prevent {
                0 => {
                    state.prevent.remove(&nexus);
                }
                1 if lu.removable => {
                    state.prevent.insert(nexus);
                }
                1 => {}
                _ => return Err(Sense::invalid_field_in_cdb()),
            }
            good()
        }
        E::Reserve => pr_result(state.res.reserve(nexus).map(|_| Vec::new())),
        E::Release => pr_result(state.res.release(nexus).map(|_| Vec::new())),
        E::PrIn { sa, alloc_len } => {
            // With ALUA each gateway is one port, named by its relative port id.
            let port = ctx.alua.map_or(ctx.tpgt, |a| a.local_port);
            respond(state.res.read_in(sa, port)?, alloc_len)
        }
        E::PrOut {
            sa,
            scope,
            typ,
            param_len,
        } => {
            if data.len() < param_len as usize {
                return Err(length_error());
            }
            if state.res.shared {
                // The store applies it to the state of every gateway.
                return Ok(Plan::Io(BlockOp::PrOut {
                    nexus: ctx.nexus.id,
                    initiator: ctx.nexus.initiator.to_string(),
                    port: ctx.alua.map_or(0, |a| a.local_port),
                    initiator_port: ctx.nexus.initiator_port,
                    all_ports: ctx.alua.map(|pg| pg.all_ports()).unwrap_or_default(),
                    sa,
                    scope,
                    typ,
                    param: data.clone(),
                }));
            }
            let aptpl_before = state.res.aptpl;
            let r = state.res.handle_out_at(
                &ctx.nexus,
                &ctx.alua.map(|pg| pg.all_ports()).unwrap_or_default(),
                sa,
                scope,
                typ,
                &data,
            );
            if r.is_ok() && matches!(sa, 0 | 6) {
                let port = ctx.alua.map_or(0, |a| a.local_port);
                state.res.note_port(ctx.nexus.id, port);
            }
            match r {
                Ok(uas) => {
                    for (n, code) in uas {
                        state.ua.add(n, code);
                    }
                    // APTPL: GOOD only once the new state is durable (SPC-4 5.13.5).
                    match state.res.saved(aptpl_before) {
                        Some((seq, saved)) => Ok(Plan::Io(BlockOp::SaveState {
                            seq,
                            data: Bytes::from(saved),
                        })),
                        None => good(),
                    }
                }
                Err(e) => pr_result(Err(e)),
            }
        }
        E::ReportOpcodes {
            rctd,
            options,
            opcode,
            sa,
            alloc_len,
        } => respond(
            crate::opcodes::report(lu, ctx.alua.is_some(), rctd, options, opcode, sa)?,
            alloc_len,
        ),
        E::ReportTargetPortGroups { format, alloc_len } => {
            use crate::alua::{report_target_port_groups, RtpgFormat};
            // Without port groups the service action stays unknown, as before ALUA.
            let Some(pg) = ctx.alua else {
                return Err(crate::alua::unsupported_without_alua());
            };
            let format = match format {
                0 => RtpgFormat::Length,
                1 => RtpgFormat::Extended,
                _ => return Err(Sense::invalid_cdb_field(1, 7)),
            };
            respond(report_target_port_groups(pg, format), alloc_len)
        }
        E::ReportTmf { repd, alloc_len } => {
            // SPC-4 table 296: ABORT TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT
            // RESET, TARGET RESET; (byte 1) no I_T NEXUS RESET / QUERY functions.
            let mut d = vec![0xd8 | 0x02, 0x00, 0, 0];
            if repd {
                d[3] = 0x0c;
                d.resize(16, 0);
            }
            respond(d, alloc_len)
        }
        E::LogSense {
            page,
            subpage,
            alloc_len,
        } => respond(log_sense(page, subpage)?, alloc_len),
        E::FormatUnit { fmtdata, .. } => {
            prepare(e, lu, &mode)?;
            if fmtdata && data.len() < 4 {
                return Err(length_error());
            }
            good()
        }
        E::Sanitize { sa, param_len, .. } => {
            let plan = sanitize(lu, sa, param_len, &data)?;
            state.sanitizing = matches!(plan, Plan::Io(_));
            state.sanitize_progress = 0;
            Ok(plan)
        }
        E::ExtendedCopy { param_len } => {
            crate::xcopy::extended_copy(lu, ctx, state, param_len, &data)
        }
        E::ReceiveCopyResults {
            sa,
            list_id,
            alloc_len,
        } => crate::xcopy::receive_copy_results(lu, ctx, state, sa, list_id, alloc_len),
    }
}

fn pr_result(r: Result<Vec<u8>, PrError>) -> Result<Plan, Sense> {
    match r {
        Ok(d) => respond(d, usize::MAX),
        Err(PrError::Conflict) => Ok(Plan::Done(Outcome::status(ScsiStatus::ReservationConflict))),
        Err(PrError::Check(s)) => Err(s),
    }
}

/// UNMAP parameter list (SBC-3 5.28.2): 8-byte header, 16-byte block descriptors.
fn unmap(lu: &LuConfig, param_len: u16, data: &[u8]) -> Result<Plan, Sense> {
    if param_len == 0 {
        return good();
    }
    if param_len < 8 || data.len() < 8 {
        return Err(length_error());
    }
    let desc_len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let body = data.get(8..).unwrap_or(&[]);
    let desc_len = desc_len.min(body.len()) / 16 * 16;
    if desc_len / 16 > MAX_UNMAP_DESCRIPTORS as usize {
        return Err(param_error());
    }
    let mut ranges = Vec::new();
    for d in body[..desc_len].chunks_exact(16) {
        let lba = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
        let n = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
        if n > MAX_UNMAP_BLOCKS {
            return Err(param_error());
        }
        let (off, len) = range(lu, lba, u64::from(n))?;
        if len > 0 {
            ranges.push((off, len));
        }
    }
    if ranges.is_empty() {
        return good();
    }
    Ok(Plan::Io(BlockOp::Unmap { ranges }))
}

/// SANITIZE (SBC-4 5.30): OVERWRITE fills the LU with the pattern, BLOCK ERASE and
/// CRYPTO ERASE deallocate (or zero) it, EXIT FAILURE MODE has nothing to leave. Bad
/// parameter lists are INVALID FIELD IN CDB, as libiscsi expects.
fn sanitize(lu: &LuConfig, sa: u8, param_len: u16, data: &[u8]) -> Result<Plan, Sense> {
    let (_, whole) = range(lu, 0, lu.num_blocks)?;
    let bad = Sense::invalid_field_in_cdb();
    match sa {
        0x01 => {
            let bs = lu.block_size as usize;
            let len = usize::from(param_len);
            if len < 5 || len > bs + 4 || data.len() < len {
                return Err(bad);
            }
            let plen = usize::from(u16::from_be_bytes([data[2], data[3]]));
            // OVERWRITE COUNT 0, or a pattern that is empty, too long or not the rest.
            if data[0] & 0x1f == 0 || plen == 0 || plen > bs || plen + 4 != len {
                return Err(bad);
            }
            let mut block = Vec::with_capacity(bs);
            while block.len() < bs {
                block.extend_from_slice(&data[4..4 + plen]);
            }
            block.truncate(bs);
            if data[0] & 0x80 != 0 {
                block.iter_mut().for_each(|b| *b = !*b);
            }
            Ok(Plan::Io(BlockOp::WriteSame {
                offset: 0,
                len: whole,
                pattern: Bytes::from(block),
                fua: true,
            }))
        }
        0x02 | 0x03 if param_len != 0 => Err(bad),
        0x02 | 0x03 => Ok(Plan::Io(BlockOp::Unmap {
            ranges: vec![(0, whole)],
        })),
        0x1f if param_len != 0 => Err(bad),
        0x1f => good(),
        _ => Err(bad),
    }
}

/// LOG SENSE (SPC-4 6.7): the supported pages page and an empty informational
/// exceptions page (no failure predicted).
fn log_sense(page: u8, subpage: u8) -> Result<Vec<u8>, Sense> {
    match (page, subpage) {
        (0x00, 0) => Ok(vec![0x00, 0, 0, 2, 0x00, 0x2f]),
        (0x2f, 0) => Ok(vec![0x2f, 0, 0, 8, 0, 0, 0x03, 4, 0, 0, 0x26, 0]),
        // LOG SENSE's PAGE CODE: byte 2 bits 5-0; SUBPAGE CODE: byte 3.
        (0x00 | 0x2f, _) => Err(Sense::invalid_cdb_field(3, 7)),
        _ => Err(Sense::invalid_cdb_field(2, 5)),
    }
}

/// GET LBA STATUS parameter data (SBC-3 5.6.2) from a store's extent map.
pub(crate) fn lba_status(cdb: &[u8], lu: &LuConfig, extents: &Bytes) -> Outcome {
    let Ok(Cdb::Ext(E::GetLbaStatus { alloc_len, .. })) = Cdb::parse(cdb) else {
        return Outcome::check(Sense::new(
            SenseKey::HardwareError,
            asc::INTERNAL_TARGET_FAILURE,
        ));
    };
    let bs = u64::from(lu.block_size.max(1));
    let mut body = Vec::new();
    for e in decode_extents(extents).into_iter().take(64) {
        let lba = e.offset / bs;
        let end = (e.offset + e.len).div_ceil(bs);
        let n = u32::try_from(end.saturating_sub(lba)).unwrap_or(u32::MAX);
        body.extend_from_slice(&lba.to_be_bytes());
        body.extend_from_slice(&n.to_be_bytes());
        body.extend_from_slice(&[u8::from(!e.mapped), 0, 0, 0]);
    }
    let mut d = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    d.extend_from_slice(&[0; 4]);
    d.extend_from_slice(&body);
    d.truncate(alloc_len as usize);
    Outcome::good(Bytes::from(d))
}

#[cfg(test)]
#[path = "sbc_ext_tests.rs"]
mod tests;
