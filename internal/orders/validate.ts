// Validation of a new order, before anything touches the database.
import { AppError } from '../errors/errors.ts';

export interface OrderInput {
  productId: string;
  quantity: number;
  userId?: string;
}

export const MAX_QUANTITY = 1000;
const ALLOWED_FIELDS = new Set(['productId', 'quantity', 'userId']);
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

/** Returns a clean OrderInput or throws VALIDATION_FAILED naming every bad field. */
export function validateOrderInput(body: unknown): OrderInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('VALIDATION_FAILED', 'request body must be a JSON object');
  }
  const fields = body as Record<string, unknown>;
  const problems: Record<string, string> = {};

  for (const key of Object.keys(fields)) {
    if (!ALLOWED_FIELDS.has(key)) problems[key] = 'unknown field';
  }
  const { productId, quantity, userId } = fields;
  if (typeof productId !== 'string' || !ID_PATTERN.test(productId)) {
    problems.productId = 'required: a product id (letters, digits, _ . : -, up to 64 characters)';
  }
  if (typeof quantity !== 'number' || !Number.isInteger(quantity) || quantity < 1 || quantity > MAX_QUANTITY) {
    problems.quantity = `required: an integer from 1 to ${MAX_QUANTITY}`;
  }
  if (userId !== undefined && (typeof userId !== 'string' || !ID_PATTERN.test(userId))) {
    problems.userId = 'optional: a user id (letters, digits, _ . : -, up to 64 characters)';
  }
  if (Object.keys(problems).length > 0) {
    throw new AppError('VALIDATION_FAILED', 'the order is not valid', problems);
  }
  return {
    productId: productId as string,
    quantity: quantity as number,
    ...(userId === undefined ? {} : { userId: userId as string }),
  };
}

export const MAX_LOOKUP_IDS = 100;

/** `GET /orders?ids=a,b,c`: 1 to MAX_LOOKUP_IDS order ids, each a uuid. */
export function validateOrderIds(raw: unknown): string[] {
  const ids = typeof raw === 'string' ? raw.split(',').map((id) => id.trim()).filter(Boolean) : [];
  if (ids.length === 0 || ids.length > MAX_LOOKUP_IDS || !ids.every(isUuid)) {
    throw new AppError('VALIDATION_FAILED', 'ids must be a comma-separated list of order ids', {
      ids: `required: 1 to ${MAX_LOOKUP_IDS} order ids (uuids), separated by commas`,
    });
  }
  return [...new Set(ids.map((id) => id.toLowerCase()))];
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: string): boolean {
  return UUID_PATTERN.test(value);
}
