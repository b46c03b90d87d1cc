use super::*;
use proptest::prelude::*;

const LIMITS: BatchLimits = BatchLimits {
    batch_bytes_max: 1 << 20,
    records_count_max: 10_000,
};

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) computed bit by bit, independent of the
/// crc32c crate, so the golden tests do not check the codec against itself.
fn reference_crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// The reference CRC must itself be right: the catalogue check value of CRC-32C over "123456789".
#[test]
fn reference_crc_matches_catalogue_check_value() {
    assert_eq!(reference_crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

/// A batch written out field by field from the published v2 layout: base offset 0, epoch 5,
/// one record with a null key, value "hi" and one header ("h" -> "v"), timestamp 1000.
fn golden_batch() -> Vec<u8> {
    let record_body: Vec<u8> = vec![
        0x00, // attributes
        0x00, // timestamp delta 0
        0x00, // offset delta 0
        0x01, // key length -1 (zig-zag)
        0x04, b'h', b'i', // value length 2, "hi"
        0x02, // one header
        0x02, b'h', // header key "h"
        0x02, b'v', // header value "v"
    ];
    let mut records = vec![(record_body.len() as u8) << 1]; // zig-zag length
    records.extend_from_slice(&record_body);
    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&0i16.to_be_bytes()); // attributes
    after_crc.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    after_crc.extend_from_slice(&1000i64.to_be_bytes()); // base timestamp
    after_crc.extend_from_slice(&1000i64.to_be_bytes()); // max timestamp
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&1i32.to_be_bytes()); // records count
    after_crc.extend_from_slice(&records);
    let batch_length = (4 + 1 + 4 + after_crc.len()) as i32;
    let mut out = Vec::new();
    out.extend_from_slice(&0i64.to_be_bytes());
    out.extend_from_slice(&batch_length.to_be_bytes());
    out.extend_from_slice(&5i32.to_be_bytes());
    out.push(2);
    out.extend_from_slice(&reference_crc32c(&after_crc).to_be_bytes());
    out.extend_from_slice(&after_crc);
    out
}

// Golden fixture: bytes laid out by hand from Kafka's published format must decode to the
// fields we wrote, and our encoder must produce exactly those bytes.
#[test]
fn golden_batch_decodes_and_reencodes_identically() {
    let golden = golden_batch();
    let header = validate(&golden, &LIMITS).expect("golden batch is valid");
    assert_eq!(header.base_offset, 0);
    assert_eq!(header.partition_leader_epoch, 5);
    assert_eq!(header.records_count, 1);
    assert_eq!(header.size(), golden.len() as u64);
    let records = decode_records(&golden, &header).expect("records decode");
    assert_eq!(records[0].key, None);
    assert_eq!(records[0].value.as_deref(), Some(&b"hi"[..]));
    assert_eq!(records[0].headers[0].key.as_ref(), b"h");
    let spec = BatchSpec {
        partition_leader_epoch: 5,
        base_timestamp: 1000,
        ..BatchSpec::default()
    };
    let encoded = encode(
        &spec,
        &[NewRecord {
            timestamp: 1000,
            key: None,
            value: Some(Bytes::from_static(b"hi")),
            headers: vec![Header {
                key: Bytes::from_static(b"h"),
                value: Some(Bytes::from_static(b"v")),
            }],
        }],
    );
    assert_eq!(&encoded[..], &golden[..]);
}

// Golden fixture for the varint encoding Kafka shares with protobuf's sint64.
#[test]
fn zigzag_varints_match_published_encoding() {
    let cases: [(i64, &[u8]); 6] = [
        (0, &[0x00]),
        (-1, &[0x01]),
        (1, &[0x02]),
        (63, &[0x7e]),
        (-64, &[0x7f]),
        (300, &[0xd8, 0x04]),
    ];
    for (value, bytes) in cases {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        assert_eq!(out, bytes, "varint of {value}");
        let mut reader = Reader { bytes, pos: 0 };
        assert_eq!(reader.varint(), Ok(value));
    }
}

// The base offset and leader epoch lie outside the CRC: rewriting them keeps the batch valid,
// which is what lets the leader assign offsets without re-encoding.
#[test]
fn base_offset_and_epoch_are_outside_the_crc() {
    let mut batch = golden_batch();
    set_base_offset(&mut batch, 12345);
    set_partition_leader_epoch(&mut batch, 9);
    let header = validate(&batch, &LIMITS).expect("still valid");
    assert_eq!(header.base_offset, 12345);
    assert_eq!(header.partition_leader_epoch, 9);
}

// Each kind of bad batch gets its own typed error, never a panic.
#[test]
fn bad_batches_get_typed_errors() {
    let good = golden_batch();
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    assert!(matches!(
        validate(&flipped, &LIMITS),
        Err(BatchError::CrcMismatch { .. })
    ));
    let mut magic = good.clone();
    magic[16] = 1;
    assert_eq!(
        validate(&magic, &LIMITS),
        Err(BatchError::UnsupportedMagic(1))
    );
    assert!(matches!(
        validate(&good[..good.len() - 3], &LIMITS),
        Err(BatchError::Truncated { .. })
    ));
    assert!(matches!(
        validate(&good[..10], &LIMITS),
        Err(BatchError::Truncated { .. })
    ));
    let tiny = BatchLimits {
        batch_bytes_max: 20,
        records_count_max: 10,
    };
    assert!(matches!(
        validate(&good, &tiny),
        Err(BatchError::TooLarge { .. })
    ));
    let mut short_length = good.clone();
    short_length[8..12].copy_from_slice(&10i32.to_be_bytes());
    assert_eq!(
        validate(&short_length, &LIMITS),
        Err(BatchError::InvalidLength(10))
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        validate(&trailing, &LIMITS),
        Err(BatchError::InvalidLength(_))
    ));
}

/// Re-signs a batch after a deliberate edit, so validation reaches the check behind the CRC.
fn resign(batch: &mut [u8]) {
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

// Semantic checks behind a valid CRC: counts, deltas, codecs and record framing.
#[test]
fn semantic_errors_behind_a_valid_crc() {
    let good = golden_batch();
    let mut count = good.clone();
    count[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&2i32.to_be_bytes());
    resign(&mut count);
    assert_eq!(
        validate(&count, &LIMITS),
        Err(BatchError::InvalidLastOffsetDelta(0))
    );
    count[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4]
        .copy_from_slice(&1i32.to_be_bytes());
    resign(&mut count);
    assert!(matches!(
        validate(&count, &LIMITS),
        Err(BatchError::InvalidRecord(_))
    ));
    let mut zero = good.clone();
    zero[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&0i32.to_be_bytes());
    resign(&mut zero);
    assert_eq!(
        validate(&zero, &LIMITS),
        Err(BatchError::InvalidRecordCount(0))
    );
    let mut codec = good.clone();
    codec[ATTRIBUTES_OFFSET + 1] = 7;
    resign(&mut codec);
    assert_eq!(
        validate(&codec, &LIMITS),
        Err(BatchError::UnknownCompression(7))
    );
    let mut delta = good.clone();
    delta[BATCH_HEADER_LEN + 3] = 0x02; // offset delta 1 for the first record
    resign(&mut delta);
    assert!(matches!(
        validate(&delta, &LIMITS),
        Err(BatchError::InvalidRecord(_))
    ));
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

fn arb_record() -> impl Strategy<Value = NewRecord> {
    let header =
        (proptest::collection::vec(any::<u8>(), 0..8), arb_bytes(8)).prop_map(|(k, v)| Header {
            key: Bytes::from(k),
            value: v,
        });
    (
        -1_000_000i64..1_000_000,
        arb_bytes(40),
        arb_bytes(200),
        proptest::collection::vec(header, 0..3),
    )
        .prop_map(|(timestamp, key, value, headers)| NewRecord {
            timestamp,
            key,
            value,
            headers,
        })
}

fn arb_spec() -> impl Strategy<Value = BatchSpec> {
    (
        any::<i64>(),
        any::<i32>(),
        -1_000_000i64..1_000_000,
        any::<i64>(),
        any::<i16>(),
        any::<i32>(),
    )
        .prop_map(
            |(base_offset, epoch, base_timestamp, pid, pepoch, seq)| BatchSpec {
                base_offset: base_offset.clamp(0, i64::MAX / 2),
                partition_leader_epoch: epoch,
                base_timestamp,
                producer_id: pid,
                producer_epoch: pepoch,
                base_sequence: seq,
                transactional: pid % 2 == 0,
                control: false,
            },
        )
}

proptest! {
    // Round trip: whatever we encode validates and decodes to the same records and fields.
    #[test]
    fn encode_decode_round_trip(spec in arb_spec(), records in proptest::collection::vec(arb_record(), 1..20)) {
        let bytes = encode(&spec, &records);
        let header = validate(&bytes, &LIMITS).expect("encoded batch validates");
        prop_assert_eq!(header.base_offset, spec.base_offset);
        prop_assert_eq!(header.producer_id, spec.producer_id);
        prop_assert_eq!(header.producer_epoch, spec.producer_epoch);
        prop_assert_eq!(header.base_sequence, spec.base_sequence);
        prop_assert_eq!(header.is_transactional(), spec.transactional);
        prop_assert_eq!(header.records_count as usize, records.len());
        prop_assert_eq!(header.max_timestamp, records.iter().map(|r| r.timestamp).max().unwrap_or(0));
        let decoded = decode_records(&bytes, &header).expect("decode");
        for (i, (got, want)) in decoded.iter().zip(&records).enumerate() {
            prop_assert_eq!(got.offset_delta as usize, i);
            prop_assert_eq!(spec.base_timestamp + got.timestamp_delta, want.timestamp);
            prop_assert_eq!(&got.key, &want.key);
            prop_assert_eq!(&got.value, &want.value);
            prop_assert_eq!(&got.headers, &want.headers);
        }
    }

    // Any single bit flip in the CRC-covered region is caught by the CRC.
    #[test]
    fn any_bit_flip_is_detected(records in proptest::collection::vec(arb_record(), 1..5), bit in any::<u64>()) {
        let bytes = encode(&BatchSpec::default(), &records);
        let mut flipped = bytes.to_vec();
        let covered_bits = (flipped.len() - CRC_COVERAGE_START) as u64 * 8;
        let bit = bit % covered_bits;
        flipped[CRC_COVERAGE_START + (bit / 8) as usize] ^= 1 << (bit % 8);
        prop_assert!(validate(&flipped, &LIMITS).is_err());
    }

    // Arbitrary bytes never panic the validator or the iterator.
    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = validate(&bytes, &LIMITS);
        for (header, _) in BatchIter::new(&bytes).flatten() {
            let _ = decode_records(&bytes, &header);
        }
    }

    // Garbage behind a valid header and CRC still never panics the record decoder.
    #[test]
    fn garbage_records_behind_valid_crc_never_panic(count in 1i32..5, body in proptest::collection::vec(any::<u8>(), 0..100)) {
        let mut batch = golden_batch()[..BATCH_HEADER_LEN].to_vec();
        batch.extend_from_slice(&body);
        let len = (batch.len() - BATCH_LENGTH_PREFIX) as i32;
        batch[8..12].copy_from_slice(&len.to_be_bytes());
        batch[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
        batch[LAST_OFFSET_DELTA_OFFSET..LAST_OFFSET_DELTA_OFFSET + 4].copy_from_slice(&(count - 1).to_be_bytes());
        resign(&mut batch);
        let _ = validate(&batch, &LIMITS);
        // The copying decoder and the non-copying check must agree on every input.
        if let Ok(header) = BatchHeader::parse(&batch) {
            prop_assert_eq!(check_records(&batch, &header), decode_records(&batch, &header).map(|_| ()));
        }
    }
}
