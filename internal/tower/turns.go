package tower

import (
	"context"
	"time"

	"github.com/hinomi/hinomi/internal/wire"
)

// ingestTurn bounds the record data one write of a batch carries. The
// store has one writer: a batch written in one transaction holds every
// other agent's batches back for as long as its inserts and its sync take,
// and a batch of the largest records the tower accepts (500 of them, 16 MiB
// decompressed) held them for about 300 ms. Written in parts of this size
// it holds them for a few milliseconds at a time, and the batches that
// arrive meanwhile take their turn between its parts.
const ingestTurn = 256 << 10

// ingestInTurns stores a batch as consecutive parts of at most ingestTurn
// bytes of record data (a batch of small records is one part), each
// committed on its own, in the batch's order: as if the agent had sent the
// parts as batches one after the other. A part that fails fails the batch,
// and the parts committed before it are kept; the agent sends the batch
// again and those records are recognised as already stored.
func (t *ingester) ingestInTurns(ctx context.Context, env *wire.Envelope, addr string, now time.Time) (uint64, error) {
	parts := splitTurns(env.Records, ingestTurn)
	if len(parts) == 1 {
		return t.ingest(ctx, env, addr, now)
	}
	var acked uint64
	for _, recs := range parts {
		part := *env
		part.Records = recs
		a, err := t.ingest(ctx, &part, addr, now)
		if err != nil {
			return 0, err
		}
		acked = a
	}
	return acked, nil
}

// splitTurns cuts records into consecutive runs of at most limit bytes of
// data each (a record larger than limit is a run of its own).
func splitTurns(recs []wire.Record, limit int) [][]wire.Record {
	var parts [][]wire.Record
	start, size := 0, 0
	for i, r := range recs {
		if i > start && size+len(r.Data) > limit {
			parts = append(parts, recs[start:i])
			start, size = i, 0
		}
		size += len(r.Data)
	}
	return append(parts, recs[start:])
}
