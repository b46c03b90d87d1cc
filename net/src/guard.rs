//! A structural pre-check of request bodies, run before `kafka-protocol` decodes them.
//!
//! `kafka-protocol` 0.18 sizes every array with `Vec::with_capacity(count)` using the count read
//! from the wire, before it has seen a single element. A 4-byte body claiming two billion
//! Metadata topics therefore asks the allocator for ~100 GiB, and an allocation failure aborts
//! the process: one malformed request would kill the broker. The guard walks the body once
//! following a compact schema of each supported request and rejects any array whose count could
//! not possibly fit in the bytes that remain (each element needs at least its minimum encoded
//! size). After the guard accepts, every array's capacity is bounded by the frame size, which
//! the frame decoder already bounds by `socket.request.max.bytes`.
//!
//! The guard only bounds counts; `kafka-protocol` stays the parser. The guard is deliberately no
//! stricter than the parser (it accepts null for any string or array, for instance), and a test
//! checks that it accepts every supported request at every supported version and consumes
//! exactly its bytes. Known tagged fields are walked inside their declared size, because
//! `kafka-protocol` decodes them from the shared buffer and a lying size would otherwise let the
//! two walks drift apart.

use kafka_protocol::messages::ApiKey;

/// Versions at or above this are unbounded on the schema side.
const ALL: i16 = i16::MAX;

/// The wire shape of one field.
#[derive(Clone, Copy)]
enum Shape {
    Int8,
    Int16,
    Int32,
    Int64,
    Uuid,
    Bool,
    /// String or nullable string (compact in flexible versions).
    Str,
    /// Bytes or nullable bytes, including record sets (compact in flexible versions).
    Bytes,
    /// Array of INT32.
    Int32Array,
    /// Array of strings.
    StrArray,
    /// Array of structs.
    StructArray(&'static Schema),
    /// A single struct (only used for tagged fields).
    Struct(&'static Schema),
}

/// A field present in versions `min..=max`.
#[derive(Clone, Copy)]
struct Field {
    shape: Shape,
    min: i16,
    max: i16,
}

/// A known tagged field present in versions `min..=max`.
#[derive(Clone, Copy)]
struct Tagged {
    tag: u32,
    field: Field,
}

/// The fields of one struct, in wire order, and its known tagged fields.
struct Schema {
    fields: &'static [Field],
    tagged: &'static [Tagged],
}

/// A request body schema and the first flexible version (KIP-482).
struct Message {
    root: Schema,
    flexible_min: i16,
}

const fn f(shape: Shape, min: i16, max: i16) -> Field {
    Field { shape, min, max }
}

const fn every(shape: Shape) -> Field {
    Field {
        shape,
        min: 0,
        max: ALL,
    }
}

const fn plain(fields: &'static [Field]) -> Schema {
    Schema {
        fields,
        tagged: &[],
    }
}

use Shape::{Bool, Bytes, Int16, Int32, Int32Array, Int64, Int8, Str, StrArray, StructArray, Uuid};

static API_VERSIONS: Message = Message {
    root: plain(&[f(Str, 3, ALL), f(Str, 3, ALL)]),
    flexible_min: 3,
};

static METADATA_TOPIC: Schema = plain(&[f(Uuid, 10, ALL), every(Str)]);
static METADATA: Message = Message {
    root: plain(&[
        every(StructArray(&METADATA_TOPIC)),
        f(Bool, 4, ALL),
        f(Bool, 8, 10),
        f(Bool, 8, ALL),
    ]),
    flexible_min: 9,
};

static PRODUCE_PARTITION: Schema = plain(&[every(Int32), every(Bytes)]);
static PRODUCE_TOPIC: Schema = plain(&[
    f(Str, 0, 12),
    f(Uuid, 13, ALL),
    every(StructArray(&PRODUCE_PARTITION)),
]);
static PRODUCE: Message = Message {
    root: plain(&[
        every(Str),
        every(Int16),
        every(Int32),
        every(StructArray(&PRODUCE_TOPIC)),
    ]),
    flexible_min: 9,
};

static FETCH_PARTITION: Schema = Schema {
    fields: &[
        every(Int32),
        f(Int32, 9, ALL),
        every(Int64),
        f(Int32, 12, ALL),
        f(Int64, 5, ALL),
        every(Int32),
    ],
    tagged: &[
        Tagged {
            tag: 0,
            field: f(Uuid, 17, ALL),
        },
        Tagged {
            tag: 1,
            field: f(Int64, 18, ALL),
        },
    ],
};
static FETCH_TOPIC: Schema = plain(&[
    f(Str, 0, 12),
    f(Uuid, 13, ALL),
    every(StructArray(&FETCH_PARTITION)),
]);
static FETCH_FORGOTTEN: Schema = plain(&[f(Str, 7, 12), f(Uuid, 13, ALL), f(Int32Array, 7, ALL)]);
static FETCH_REPLICA_STATE: Schema = plain(&[f(Int32, 15, ALL), f(Int64, 15, ALL)]);
static FETCH: Message = Message {
    root: Schema {
        fields: &[
            f(Int32, 0, 14),
            every(Int32),
            every(Int32),
            every(Int32),
            every(Int8),
            f(Int32, 7, ALL),
            f(Int32, 7, ALL),
            every(StructArray(&FETCH_TOPIC)),
            f(StructArray(&FETCH_FORGOTTEN), 7, ALL),
            f(Str, 11, ALL),
        ],
        tagged: &[
            Tagged {
                tag: 0,
                field: f(Str, 12, ALL),
            },
            Tagged {
                tag: 1,
                field: f(Shape::Struct(&FETCH_REPLICA_STATE), 15, ALL),
            },
        ],
    },
    flexible_min: 12,
};

static LIST_OFFSETS_PARTITION: Schema = plain(&[every(Int32), f(Int32, 4, ALL), every(Int64)]);
static LIST_OFFSETS_TOPIC: Schema =
    plain(&[every(Str), every(StructArray(&LIST_OFFSETS_PARTITION))]);
static LIST_OFFSETS: Message = Message {
    root: plain(&[
        every(Int32),
        f(Int8, 2, ALL),
        every(StructArray(&LIST_OFFSETS_TOPIC)),
        f(Int32, 10, ALL),
    ]),
    flexible_min: 6,
};

static CREATE_TOPICS_ASSIGNMENT: Schema = plain(&[every(Int32), every(Int32Array)]);
static CREATE_TOPICS_CONFIG: Schema = plain(&[every(Str), every(Str)]);
static CREATE_TOPICS_TOPIC: Schema = plain(&[
    every(Str),
    every(Int32),
    every(Int16),
    every(StructArray(&CREATE_TOPICS_ASSIGNMENT)),
    every(StructArray(&CREATE_TOPICS_CONFIG)),
]);
static CREATE_TOPICS: Message = Message {
    root: plain(&[
        every(StructArray(&CREATE_TOPICS_TOPIC)),
        every(Int32),
        f(Bool, 1, ALL),
    ]),
    flexible_min: 5,
};

static DELETE_TOPICS_STATE: Schema = plain(&[f(Str, 6, ALL), f(Uuid, 6, ALL)]);
static DELETE_TOPICS: Message = Message {
    root: plain(&[
        f(StructArray(&DELETE_TOPICS_STATE), 6, ALL),
        f(StrArray, 0, 5),
        every(Int32),
    ]),
    flexible_min: 4,
};

static DESCRIBE_CONFIGS_RESOURCE: Schema = plain(&[every(Int8), every(Str), every(StrArray)]);
static DESCRIBE_CONFIGS: Message = Message {
    root: plain(&[
        every(StructArray(&DESCRIBE_CONFIGS_RESOURCE)),
        f(Bool, 1, ALL),
        f(Bool, 3, ALL),
    ]),
    flexible_min: 4,
};

static DESCRIBE_CLUSTER: Message = Message {
    root: plain(&[every(Bool), f(Int8, 1, ALL), f(Bool, 2, ALL)]),
    flexible_min: 0,
};

/// Why the guard refused a body. Always the client's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuardError {
    /// The body ended inside a field.
    Truncated,
    /// A length or count was negative (other than the null marker).
    NegativeLength,
    /// An array claimed more elements than the remaining bytes could hold.
    CountTooLarge { count: u64, remaining: u64 },
    /// A known tagged field's content did not match its declared size.
    TaggedFieldSize,
    /// The guard has no schema for this API (a programming error in the API table).
    NoSchema,
}

fn message(api_key: ApiKey) -> Option<&'static Message> {
    Some(match api_key {
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::Metadata => &METADATA,
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        _ => return None,
    })
}

/// Whether the guard has a schema for `api_key`.
#[cfg(test)]
pub(crate) fn has_schema(api_key: ApiKey) -> bool {
    message(api_key).is_some()
}

/// What the guard found in a body it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyShape {
    /// Bytes the body's known fields occupy; anything after them is trailing.
    pub len: usize,
    /// Tagged fields whose tag this version does not define (skipped by their declared size).
    pub unknown_tagged_fields: u32,
}

/// Walks `body` as a request of `api_key` at `version`; returns how many bytes the body
/// occupies (the caller decides what to do with bytes after it) and how many unknown tagged
/// fields it skipped.
pub(crate) fn check_request_body(
    api_key: ApiKey,
    version: i16,
    body: &[u8],
) -> Result<BodyShape, GuardError> {
    let message = message(api_key).ok_or(GuardError::NoSchema)?;
    let mut walker = Walker {
        bytes: body,
        position: 0,
        version,
        flexible: version >= message.flexible_min,
        unknown_tagged_fields: 0,
    };
    walker.walk_struct(&message.root)?;
    Ok(BodyShape {
        len: walker.position,
        unknown_tagged_fields: walker.unknown_tagged_fields,
    })
}

/// A cursor over the body plus the version context that picks the field encodings.
struct Walker<'a> {
    bytes: &'a [u8],
    position: usize,
    version: i16,
    flexible: bool,
    unknown_tagged_fields: u32,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn skip(&mut self, count: usize) -> Result<(), GuardError> {
        if count > self.remaining() {
            return Err(GuardError::Truncated);
        }
        self.position += count;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], GuardError> {
        let bytes = self
            .bytes
            .get(self.position..self.position + N)
            .ok_or(GuardError::Truncated)?;
        self.position += N;
        Ok(bytes.try_into().expect("slice has length N"))
    }

    /// Reads an unsigned varint of at most five bytes, as `kafka-protocol` does.
    fn unsigned_varint(&mut self) -> Result<u32, GuardError> {
        let mut value: u32 = 0;
        for i in 0..5u32 {
            let [byte] = self.take::<1>()?;
            value |= u32::from(byte & 0x7f).wrapping_shl(i * 7);
            if byte < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    /// Reads a length or count: `None` is the null marker.
    fn length(&mut self, wide: bool) -> Result<Option<u64>, GuardError> {
        if self.flexible {
            return Ok(self.unsigned_varint()?.checked_sub(1).map(u64::from));
        }
        let value = if wide {
            i32::from_be_bytes(self.take::<4>()?)
        } else {
            i32::from(i16::from_be_bytes(self.take::<2>()?))
        };
        match value {
            -1 => Ok(None),
            v if v < 0 => Err(GuardError::NegativeLength),
            v => Ok(Some(v as u64)),
        }
    }

    fn walk_struct(&mut self, schema: &Schema) -> Result<(), GuardError> {
        for field in schema.fields {
            if field.min <= self.version && self.version <= field.max {
                self.walk(field.shape)?;
            }
        }
        if self.flexible {
            self.walk_tagged_fields(schema)?;
        }
        Ok(())
    }

    fn walk_tagged_fields(&mut self, schema: &Schema) -> Result<(), GuardError> {
        let count = self.unsigned_varint()?;
        for _ in 0..count {
            let tag = self.unsigned_varint()?;
            let size = self.unsigned_varint()? as usize;
            let end = self
                .position
                .checked_add(size)
                .filter(|end| *end <= self.bytes.len());
            let end = end.ok_or(GuardError::Truncated)?;
            let known = schema.tagged.iter().find(|t| {
                t.tag == tag && t.field.min <= self.version && self.version <= t.field.max
            });
            match known {
                Some(tagged) => {
                    self.walk(tagged.field.shape)?;
                    if self.position != end {
                        return Err(GuardError::TaggedFieldSize);
                    }
                }
                None => {
                    self.unknown_tagged_fields = self.unknown_tagged_fields.saturating_add(1);
                    self.position = end;
                }
            }
        }
        Ok(())
    }

    fn walk(&mut self, shape: Shape) -> Result<(), GuardError> {
        match shape {
            Int8 | Bool => self.skip(1),
            Int16 => self.skip(2),
            Int32 => self.skip(4),
            Int64 => self.skip(8),
            Uuid => self.skip(16),
            Str => self.walk_blob(false),
            Bytes => self.walk_blob(true),
            Int32Array => self.walk_array(Int32),
            StrArray => self.walk_array(Str),
            StructArray(schema) => self.walk_array(Shape::Struct(schema)),
            Shape::Struct(schema) => self.walk_struct(schema),
        }
    }

    fn walk_blob(&mut self, wide: bool) -> Result<(), GuardError> {
        match self.length(wide)? {
            None => Ok(()),
            Some(size) => self.skip(usize::try_from(size).map_err(|_| GuardError::Truncated)?),
        }
    }

    fn walk_array(&mut self, element: Shape) -> Result<(), GuardError> {
        let Some(count) = self.length(true)? else {
            return Ok(());
        };
        let remaining = self.remaining() as u64;
        if count.saturating_mul(self.min_size(element)) > remaining {
            return Err(GuardError::CountTooLarge { count, remaining });
        }
        for _ in 0..count {
            self.walk(element)?;
        }
        Ok(())
    }

    /// The fewest bytes one element of `shape` can occupy at this version; at least 1, so that
    /// an accepted count never exceeds the bytes that remain.
    fn min_size(&self, shape: Shape) -> u64 {
        let length_prefix = |wide: bool| match (self.flexible, wide) {
            (true, _) => 1,
            (false, true) => 4,
            (false, false) => 2,
        };
        let size = match shape {
            Int8 | Bool => 1,
            Int16 => 2,
            Int32 => 4,
            Int64 => 8,
            Uuid => 16,
            Str => length_prefix(false),
            Bytes | Int32Array | StrArray | StructArray(_) => length_prefix(true),
            Shape::Struct(schema) => {
                let fields = schema
                    .fields
                    .iter()
                    .filter(|f| f.min <= self.version && self.version <= f.max);
                let tagged_count = u64::from(self.flexible);
                fields.map(|f| self.min_size(f.shape)).sum::<u64>() + tagged_count
            }
        };
        size.max(1)
    }
}

/// Random well-formed request bodies built from the guard's own schemas, for the test that
/// holds each schema to `kafka-protocol`'s parser: a body generated here must decode, consume
/// every byte, and encode back to the same bytes. A field missing from a schema, in the wrong
/// place, of the wrong shape or over the wrong versions breaks one of the three.
#[cfg(test)]
pub(crate) mod generate {
    use super::{message, Bool, Bytes, Int16, Int32, Int32Array, Int64, Int8, Schema, Shape};
    use super::{Str, StrArray, StructArray, Uuid};
    use kafka_protocol::messages::ApiKey;

    /// A tiny deterministic generator (xorshift64*); the tests draw their seeds.
    pub(crate) struct Rng(pub u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A tag no supported schema defines, for unknown tagged fields (above every known tag, so
    /// the re-encoded order matches).
    pub(crate) const UNKNOWN_TAG_BASE: u32 = 60;

    /// A random body of `api_key` at `version`, with `unknown_tags` unknown tagged fields in the
    /// root's tagged section (flexible versions only).
    pub(crate) fn body(api_key: ApiKey, version: i16, rng: &mut Rng, unknown_tags: u32) -> Vec<u8> {
        let message = message(api_key).expect("schema");
        let mut gen = Gen {
            out: Vec::new(),
            version,
            flexible: version >= message.flexible_min,
            rng,
        };
        gen.structure(&message.root, unknown_tags);
        gen.out
    }

    struct Gen<'a> {
        out: Vec<u8>,
        version: i16,
        flexible: bool,
        rng: &'a mut Rng,
    }

    impl Gen<'_> {
        fn varint(&mut self, mut value: u32) {
            while value >= 0x80 {
                self.out.push((value as u8) | 0x80);
                value >>= 7;
            }
            self.out.push(value as u8);
        }

        fn length(&mut self, len: usize, wide: bool) {
            if self.flexible {
                self.varint(len as u32 + 1);
            } else if wide {
                self.out.extend_from_slice(&(len as i32).to_be_bytes());
            } else {
                self.out.extend_from_slice(&(len as i16).to_be_bytes());
            }
        }

        fn structure(&mut self, schema: &Schema, unknown_tags: u32) {
            for field in schema.fields {
                if field.min <= self.version && self.version <= field.max {
                    self.value(field.shape);
                }
            }
            if !self.flexible {
                return;
            }
            let known: Vec<_> = schema
                .tagged
                .iter()
                .filter(|t| t.field.min <= self.version && self.version <= t.field.max)
                .filter(|_| self.rng.below(2) == 0)
                .collect();
            self.varint(known.len() as u32 + unknown_tags);
            for tagged in known {
                let mut inner = Gen {
                    out: Vec::new(),
                    version: self.version,
                    flexible: self.flexible,
                    rng: self.rng,
                };
                inner.value(tagged.field.shape);
                let bytes = inner.out;
                self.varint(tagged.tag);
                self.varint(bytes.len() as u32);
                self.out.extend_from_slice(&bytes);
            }
            for index in 0..unknown_tags {
                let size = self.rng.below(4) as usize;
                self.varint(UNKNOWN_TAG_BASE + index);
                self.varint(size as u32);
                self.out.extend(std::iter::repeat_n(0xa5, size));
            }
        }

        fn value(&mut self, shape: Shape) {
            match shape {
                Int8 => self.out.push(self.rng.next() as u8),
                Bool => self.out.push((self.rng.below(2)) as u8),
                Int16 => self
                    .out
                    .extend_from_slice(&(self.rng.next() as i16).to_be_bytes()),
                Int32 => self
                    .out
                    .extend_from_slice(&(self.rng.next() as i32).to_be_bytes()),
                Int64 => self
                    .out
                    .extend_from_slice(&(self.rng.next() as i64).to_be_bytes()),
                Uuid => {
                    let bytes = self.rng.next().to_be_bytes();
                    let more = self.rng.next().to_be_bytes();
                    self.out.extend_from_slice(&bytes);
                    self.out.extend_from_slice(&more);
                }
                Str => {
                    let len = 1 + self.rng.below(6) as usize;
                    self.length(len, false);
                    for _ in 0..len {
                        let letter = b'a' + self.rng.below(26) as u8;
                        self.out.push(letter);
                    }
                }
                Bytes => {
                    let len = self.rng.below(6) as usize;
                    self.length(len, true);
                    for _ in 0..len {
                        let byte = self.rng.next() as u8;
                        self.out.push(byte);
                    }
                }
                Int32Array => self.array(Int32),
                StrArray => self.array(Str),
                StructArray(schema) => self.array(Shape::Struct(schema)),
                Shape::Struct(schema) => self.structure(schema, 0),
            }
        }

        fn array(&mut self, element: Shape) {
            let count = self.rng.below(3) as usize;
            self.length(count, true);
            for _ in 0..count {
                self.value(element);
            }
        }
    }
}
