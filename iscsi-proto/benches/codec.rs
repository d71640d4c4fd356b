//! Hot-path codec costs: decoding a SCSI command and a 4 KiB Data-Out, encoding a
//! 4 KiB Data-In (header only — the data is shared, not copied), and CRC32C.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use iscsi_proto::framing::PduDecoder;
use iscsi_proto::pdu::{DataIn, DataOut, Digests, Pdu, ScsiCommand, TaskAttr};
use iscsi_proto::{digest, Itt, LunField, SerialNumber, Ttt};

fn read10_command() -> Pdu {
    let mut cdb = vec![0u8; 16];
    cdb[0] = 0x28;
    cdb[8] = 8;
    Pdu::ScsiCommand(ScsiCommand {
        immediate: false,
        final_bit: true,
        read: true,
        write: false,
        attr: TaskAttr::Simple,
        lun: LunField::from_lun(1),
        itt: Itt(7),
        expected_data_transfer_length: 4096,
        cmd_sn: SerialNumber(1),
        exp_stat_sn: SerialNumber(1),
        cdb: Bytes::from(cdb),
        data: Bytes::new(),
    })
}

fn data_out_4k() -> Pdu {
    Pdu::DataOut(DataOut {
        final_bit: true,
        lun: LunField::from_lun(1),
        itt: Itt(7),
        ttt: Ttt(3),
        exp_stat_sn: SerialNumber(1),
        data_sn: 0,
        buffer_offset: 0,
        data: Bytes::from(vec![0xa5u8; 4096]),
    })
}

fn decode(c: &mut Criterion) {
    for (name, pdu, digests) in [
        ("decode/scsi_command", read10_command(), Digests::default()),
        ("decode/data_out_4k", data_out_4k(), Digests::default()),
        (
            "decode/data_out_4k_digests",
            data_out_4k(),
            Digests {
                header: true,
                data: true,
            },
        ),
    ] {
        let wire = pdu.encode(digests).to_vec();
        let mut dec = PduDecoder::new(1 << 20);
        dec.digests = digests;
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(wire.len() as u64));
        g.bench_function("one", |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(&wire[..]);
                black_box(dec.decode(&mut buf).expect("valid").expect("whole"))
            })
        });
        g.finish();
    }
}

fn encode(c: &mut Criterion) {
    let data = Bytes::from(vec![0x5au8; 4096]);
    let pdu = Pdu::DataIn(DataIn {
        final_bit: true,
        ack: false,
        overflow: false,
        underflow: false,
        status_present: true,
        status: 0,
        lun: LunField::default(),
        itt: Itt(7),
        ttt: Ttt::RESERVED,
        stat_sn: SerialNumber(2),
        exp_cmd_sn: SerialNumber(2),
        max_cmd_sn: SerialNumber(129),
        data_sn: 0,
        buffer_offset: 0,
        residual_count: 0,
        data,
    });
    c.bench_function("encode/data_in_4k", |b| {
        b.iter(|| black_box(pdu.encode(Digests::default())))
    });
    // The connection's way: headers carved out of a kept arena.
    let mut arena = bytes::BytesMut::new();
    c.bench_function("encode_in/data_in_4k", |b| {
        b.iter(|| black_box(pdu.encode_in(Digests::default(), &mut arena)))
    });
}

fn crc(c: &mut Criterion) {
    let buf = vec![0x3cu8; 128 * 1024];
    let mut g = c.benchmark_group("crc32c");
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("128k", |b| {
        b.iter(|| black_box(digest::crc32c(black_box(&buf))))
    });
    g.finish();
}

criterion_group!(benches, decode, encode, crc);
criterion_main!(benches);
