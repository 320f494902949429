/**
 * Which calls of a tool need a person's approval: `'always'`, `'never'`, or a rule on the call's
 * input. A rule is data, not code, because the coordinator decides before anything is queued and
 * knows a tool only from the catalog (the workers' advertised specs, JSON): a function in
 * defineTool would have to run on a worker, taking a slot and a round trip before a call that
 * then waits anyway. The worker advertises the rule with the tool's spec; the coordinator
 * evaluates it against each call's input when it plans the batch.
 */
import { z } from 'zod';

const scalar = z.union([z.string(), z.number(), z.boolean()]);

/**
 * One condition on the input: the value at `field` (a dotted path: `amount`, `to.country`) is a
 * number greater than `above`, equals `equals`, or is one of `in`. A missing field never matches.
 */
export const approvalConditionSchema = z
  .strictObject({
    field: z.string().min(1).max(200),
    above: z.number().optional(),
    equals: scalar.optional(),
    in: z.array(scalar).min(1).max(100).optional(),
  })
  .refine((c) => [c.above, c.equals, c.in].filter((v) => v !== undefined).length === 1, {
    message: 'give exactly one of above, equals, in',
  });
export type ApprovalCondition = z.infer<typeof approvalConditionSchema>;

/** A call needs approval when any condition of `when` matches its input. */
export const approvalRuleSchema = z.strictObject({
  when: z.array(approvalConditionSchema).min(1).max(20),
});
export type ApprovalRule = z.infer<typeof approvalRuleSchema>;

export const approvalSettingSchema = z.union([z.literal('always'), z.literal('never'), approvalRuleSchema]);
export type ApprovalSetting = z.infer<typeof approvalSettingSchema>;

/** Whether a call with this input needs approval under the tool's setting (absent: never). */
export function needsApproval(setting: ApprovalSetting | undefined, input: unknown): boolean {
  if (setting === undefined || setting === 'never') return false;
  if (setting === 'always') return true;
  return setting.when.some((condition) => matches(condition, input));
}

function matches(condition: ApprovalCondition, input: unknown): boolean {
  const value = valueAt(input, condition.field);
  if (value === undefined) return false;
  if (condition.above !== undefined) return typeof value === 'number' && value > condition.above;
  if (condition.equals !== undefined) return value === condition.equals;
  return condition.in?.some((candidate) => candidate === value) ?? false;
}

function valueAt(input: unknown, path: string): unknown {
  let value: unknown = input;
  for (const part of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    if (!Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}
