// The products table: stock levels, owned by the Inventory side.
import type { Queryable } from '../db/pool.ts';

export interface Product {
  id: string;
  name: string;
  stock: number;
}

export async function listProducts(db: Queryable): Promise<Product[]> {
  const { rows } = await db.query<Product>(`SELECT id, name, stock FROM products ORDER BY id`);
  return rows;
}

/**
 * Runs on the caller's transaction client. Takes `quantity` off the product's stock only if
 * enough is left (the guard and the update are one statement, so two orders can never both
 * take the last unit). Returns the new stock, or undefined when there was not enough.
 */
export async function takeStock(tx: Queryable, productId: string, quantity: number): Promise<number | undefined> {
  const { rows } = await tx.query<{ stock: number }>(
    `UPDATE products SET stock = stock - $2, updated_at = now()
      WHERE id = $1 AND stock >= $2
     RETURNING stock`,
    [productId, quantity],
  );
  return rows[0]?.stock;
}

/** Runs on the caller's transaction client: gives `quantity` back (a cancelled reservation). Returns the new stock. */
export async function giveStockBack(tx: Queryable, productId: string, quantity: number): Promise<number | undefined> {
  const { rows } = await tx.query<{ stock: number }>(
    `UPDATE products SET stock = stock + $2, updated_at = now() WHERE id = $1 RETURNING stock`,
    [productId, quantity],
  );
  return rows[0]?.stock;
}

export async function stockOf(db: Queryable, productId: string): Promise<number | undefined> {
  const { rows } = await db.query<{ stock: number }>(`SELECT stock FROM products WHERE id = $1`, [productId]);
  return rows[0]?.stock;
}

/** What migrations/0001_init.sql seeds every product with; the demo resets to it. */
export const SEED_STOCK = 100_000;

/** Sets every product's stock to `stock`. */
export async function restockAll(tx: Queryable, stock: number): Promise<void> {
  await tx.query(`UPDATE products SET stock = $1, updated_at = now()`, [stock]);
}

/** Sets stock levels, for tests. */
export async function setStock(db: Queryable, stock: Record<string, number>): Promise<void> {
  for (const [id, value] of Object.entries(stock)) {
    await db.query(`UPDATE products SET stock = $2, updated_at = now() WHERE id = $1`, [id, value]);
  }
}

/**
 * Runs on the caller's transaction client: locks the rows of `productIds` (in id order, so two
 * batches locking overlapping products cannot deadlock) and returns their stock. Unknown ids
 * are absent. The locks hold until the transaction ends.
 *
 * FOR NO KEY UPDATE, the lock an UPDATE of the stock takes anyway: it excludes other stock
 * changes but not the FOR KEY SHARE that inserting an order takes on its product (the foreign
 * key check). FOR UPDATE would make every new order for these products wait for the batch.
 */
export async function lockStock(tx: Queryable, productIds: readonly string[]): Promise<Map<string, number>> {
  const { rows } = await tx.query<{ id: string; stock: number }>(
    `SELECT id, stock FROM products WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE`,
    [[...productIds]],
  );
  return new Map(rows.map((row) => [row.id, row.stock]));
}

/**
 * Runs on the caller's transaction client, after lockStock: takes each product's summed
 * quantity in one statement (a negative amount gives stock back: cancellations in a batch).
 */
export async function takeStockAmounts(tx: Queryable, amounts: ReadonlyMap<string, number>): Promise<void> {
  if (amounts.size === 0) return;
  await tx.query(
    `UPDATE products p SET stock = p.stock - t.quantity, updated_at = now()
       FROM unnest($1::text[], $2::int[]) AS t(id, quantity)
      WHERE p.id = t.id`,
    [[...amounts.keys()], [...amounts.values()]],
  );
}
