package store

import "context"

// ShardLevels reads the level of each shard of sku, for tests that check
// where units are.
func (st *Store) ShardLevels(ctx context.Context, sku string) ([]int64, error) {
	_, levels, err := st.shardLevels(ctx, sku)
	return levels, err
}

// FirstShard is the shard an order's reservation tries first.
func FirstShard(orderID string, k int) int { return firstShard(orderID, k) }
