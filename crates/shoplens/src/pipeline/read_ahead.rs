//! The read-ahead stage: a thread of its own takes the input's messages from
//! the consumer and decodes them, ahead of the consume loop. Decoding is a
//! fifth of the pipeline's CPU and needs nothing of the state, so it runs
//! on the second core while the loop applies events and closes windows.
//!
//! Messages go over a bounded channel in batches, in the order the consumer
//! gave them (so each partition's in offset order). A batch keeps each
//! message's key and payload in one buffer: a message the loop rejects
//! later (late, or a bad event) is dead-lettered unchanged. The loop still
//! decides everything else (assignment, skips, gaps, seeks) by offset; each
//! read carries the input's seek count from before it began, so a message
//! read before a seek back is not taken for the seek's answer.

use std::future::Future;
use std::ops::Range;
use std::task::{Context, Poll, Waker};

use aggregator::Source;
use contract::{Decoder, Event, Invalid};
use ingest::{Feed, KafkaError, Messages, Received, Topology};
use tokio::sync::mpsc;

/// Most messages in one batch: about a millisecond of the loop's work, so a
/// tick or an acknowledgement waits at most that long behind a batch.
const MAX_BATCH: usize = 256;
/// A batch also ends once its keys and payloads reach this many bytes.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Batches read ahead before the thread waits for the loop: at most 32,768
/// messages, about 40 MB of payloads and events at storefront sizes, and
/// 128 times (256 KiB + one message) whatever the messages. A step closing
/// windows takes tens of milliseconds, in which the thread decodes the next
/// few thousand messages; a queue of 16 batches left it waiting.
const BATCHES_AHEAD: usize = 128;

/// One message read, as the consume loop needs it.
pub(super) struct Read {
    /// Where it came from (only messages of topics the pipeline reads are
    /// passed on).
    pub(super) source: Source,
    offset: i64,
    /// The input's seek count when its read began.
    pub(super) read_epoch: u64,
    key: Option<Range<usize>>,
    payload: Range<usize>,
    /// The decoded event of an input stream (`None` for customer facts,
    /// which the loop reads itself), boxed: from here to the aggregates it
    /// moves as a pointer, not as its 312 bytes.
    pub(super) decoded: Option<Result<Box<Event>, Invalid>>,
}

/// A message as read: its place, its key and payload (its topic's name is
/// the [`Topology`]'s for its source).
pub(super) struct Message<'a> {
    pub(super) source: Source,
    pub(super) offset: i64,
    pub(super) key: Option<&'a [u8]>,
    /// Empty when there was none.
    pub(super) payload: &'a [u8],
}

/// Messages read ahead, with their keys and payloads in one buffer.
#[derive(Default)]
pub(super) struct ReadBatch {
    bytes: Vec<u8>,
    reads: Vec<Read>,
}

impl ReadBatch {
    /// An empty batch with room for a whole one at storefront sizes.
    fn with_room() -> Self {
        ReadBatch {
            bytes: Vec::with_capacity(MAX_BATCH * 512),
            reads: Vec::with_capacity(MAX_BATCH),
        }
    }

    /// The messages, in the order read; [`ReadBatch::message`] gives their
    /// bytes. Give the emptied vector back with [`ReadBatch::put_back`].
    pub(super) fn take(&mut self) -> Vec<Read> {
        std::mem::take(&mut self.reads)
    }

    /// Takes back the vector [`ReadBatch::take`] gave, emptied, keeping its
    /// room.
    pub(super) fn put_back(&mut self, mut reads: Vec<Read>) {
        reads.clear();
        self.reads = reads;
    }

    /// What the loop reads of `r` besides its event: where it came from,
    /// its key and its payload.
    pub(super) fn message<'a>(&'a self, r: &'a Read) -> Message<'a> {
        Message {
            source: r.source,
            offset: r.offset,
            key: r.key.clone().map(|k| &self.bytes[k]),
            payload: &self.bytes[r.payload.clone()],
        }
    }

    fn is_full(&self) -> bool {
        self.reads.len() >= MAX_BATCH || self.bytes.len() >= MAX_BATCH_BYTES
    }

    /// Adds `m`, decoded if it is an input stream's, read since
    /// `read_epoch` seeks; messages of topics `topology` does not read are
    /// left out.
    fn push(&mut self, m: &Received<'_>, topology: &Topology, read_epoch: u64, decoder: &Decoder) {
        let Some(source) = m.source() else { return };
        let Some(feed) = topology.feed(source) else {
            return;
        };
        let decoded = match feed {
            Feed::Input(stream) => Some(
                decoder
                    .decode(m.payload(), stream, m.timestamp_ms())
                    .map(Box::new),
            ),
            Feed::CustomerFacts => None,
        };
        let read = Read {
            source,
            offset: m.offset(),
            read_epoch,
            key: None,
            payload: 0..0,
            decoded,
        };
        self.add(read, m.key(), m.payload());
    }

    /// Adds `read`, keeping its key and payload in the batch's buffer.
    fn add(&mut self, mut read: Read, key: Option<&[u8]>, payload: &[u8]) {
        let mut keep = |bytes: &[u8]| {
            let start = self.bytes.len();
            self.bytes.extend_from_slice(bytes);
            start..self.bytes.len()
        };
        read.key = key.map(&mut keep);
        read.payload = keep(payload);
        self.reads.push(read);
    }
}

/// What the thread hands the loop: a batch, or the consumer's error.
pub(super) type Delivery = Result<ReadBatch, KafkaError>;

/// Starts the stage on a thread of its own, `read-ahead`, and returns its
/// batches. A thread rather than a task of the runtime: a task woken by
/// another runs on the waker's worker first, so the two would take turns on
/// one core. The thread ends when the receiver is dropped; [`ReadAhead::stop`]
/// waits for that, so that the consumer it shares closes with the pipeline.
pub(super) fn start(messages: Messages, decoder: Decoder) -> Result<ReadAhead, std::io::Error> {
    let (tx, rx) = mpsc::channel(BATCHES_AHEAD);
    let (recycle, recycled) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Handle::current();
    let thread = std::thread::Builder::new()
        .name("read-ahead".into())
        .spawn(move || runtime.block_on(run(messages, decoder, tx, recycled)))?;
    Ok(ReadAhead {
        rx,
        thread,
        recycle,
    })
}

/// The running stage: its batches and its thread.
pub(super) struct ReadAhead {
    rx: mpsc::Receiver<Delivery>,
    thread: std::thread::JoinHandle<()>,
    /// Batches the loop is done with, to fill again: growing a batch's
    /// buffers from nothing, in memory fresh from the kernel, was a fifth
    /// of the thread's time.
    recycle: std::sync::mpsc::Sender<ReadBatch>,
}

impl ReadAhead {
    /// The next batch (`None` if the stage has ended, which it does only
    /// when stopped or on a panic).
    pub(super) async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }

    /// Hands back a batch the loop is done with. One that grew past a
    /// whole batch's room (a huge message) is dropped instead.
    pub(super) fn recycle(&self, mut batch: ReadBatch) {
        if batch.bytes.capacity() > 2 * MAX_BATCH_BYTES {
            return;
        }
        batch.bytes.clear();
        batch.reads.clear();
        let _ = self.recycle.send(batch);
    }

    /// Stops the stage and waits for its thread to end.
    pub(super) async fn stop(self) {
        let ReadAhead { rx, thread, .. } = self;
        drop(rx);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
}

async fn run(
    messages: Messages,
    decoder: Decoder,
    tx: mpsc::Sender<Delivery>,
    recycled: std::sync::mpsc::Receiver<ReadBatch>,
) {
    let topology = messages.topology();
    loop {
        let mut batch = recycled
            .try_recv()
            .unwrap_or_else(|_| ReadBatch::with_room());
        let mut error = None;
        // Wait for one message (or the loop's end), then take what is ready
        // without waiting. Each read is stamped with the seeks made before
        // it began (see `KafkaInput::seeks_made`).
        let epoch = messages.seeks_made();
        let first = tokio::select! {
            biased;
            _ = tx.closed() => return,
            first = messages.recv() => first,
        };
        match first {
            Ok(m) => batch.push(&m, topology, epoch, &decoder),
            Err(e) => error = Some(e),
        }
        while error.is_none() && !batch.is_full() {
            let epoch = messages.seeks_made();
            match ready(&messages) {
                Some(Ok(m)) => batch.push(&m, topology, epoch, &decoder),
                Some(Err(e)) => error = Some(e),
                None => break,
            }
        }
        if !batch.reads.is_empty() && tx.send(Ok(batch)).await.is_err() {
            return;
        }
        if let Some(e) = error {
            if tx.send(Err(e)).await.is_err() {
                return;
            }
        }
    }
}

/// The next message if the consumer has one now. The consumer's `recv` is
/// cancel-safe: a future dropped while pending has taken nothing.
fn ready(messages: &Messages) -> Option<Result<Received<'_>, KafkaError>> {
    let mut next = std::pin::pin!(messages.recv());
    match next.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(offset: i64) -> Read {
        Read {
            source: Source {
                stream: 0,
                partition: 3,
            },
            offset,
            read_epoch: 0,
            key: None,
            payload: 0..0,
            decoded: None,
        }
    }

    #[test]
    fn each_message_gets_back_its_own_key_and_payload() {
        let messages: Vec<(Option<Vec<u8>>, Vec<u8>)> = vec![
            (Some(b"visitor-1".to_vec()), br#"{"a":1}"#.to_vec()),
            (None, b"not json".to_vec()),
            (Some(Vec::new()), Vec::new()),
            (Some(b"k".to_vec()), vec![0xff; 70_000]),
        ];
        let mut batch = ReadBatch::default();
        for (i, (key, payload)) in messages.iter().enumerate() {
            batch.add(read(i as i64), key.as_deref(), payload);
        }
        let reads = batch.take();
        assert_eq!(reads.len(), messages.len());
        for (r, (key, payload)) in reads.iter().zip(&messages) {
            let m = batch.message(r);
            assert_eq!(m.key, key.as_deref(), "offset {}", m.offset);
            assert_eq!(m.payload, payload.as_slice(), "offset {}", m.offset);
            assert_eq!(m.source.partition, 3);
        }
    }

    #[test]
    fn a_batch_ends_at_its_message_or_byte_bound() {
        let mut batch = ReadBatch::default();
        for i in 0..MAX_BATCH as i64 - 1 {
            batch.add(read(i), None, b"{}");
        }
        assert!(!batch.is_full());
        batch.add(read(0), None, b"{}");
        assert!(batch.is_full(), "{MAX_BATCH} messages");

        let mut batch = ReadBatch::default();
        batch.add(read(0), None, &vec![b' '; MAX_BATCH_BYTES - 1]);
        assert!(!batch.is_full());
        batch.add(read(1), Some(b"k"), b"");
        assert!(batch.is_full(), "{MAX_BATCH_BYTES} bytes");
    }

    #[test]
    fn a_batch_given_back_keeps_its_room_and_holds_new_messages() {
        let mut batch = ReadBatch::with_room();
        batch.add(read(0), Some(b"k0"), b"first");
        let mut reads = batch.take();
        let room = reads.capacity();
        reads.drain(..).for_each(drop);
        batch.put_back(reads);
        batch.bytes.clear();
        assert_eq!(batch.reads.capacity(), room);
        batch.add(read(1), None, b"second");
        let reads = batch.take();
        assert_eq!(reads.len(), 1);
        let m = batch.message(&reads[0]);
        assert_eq!((m.offset, m.key, m.payload), (1, None, &b"second"[..]));
    }
}
