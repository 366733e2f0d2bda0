/**
 * Every property-based test runs from one seed: `FC_SEED` when set, else a fixed default, so a run
 * is reproducible and a failure replays with the command printed beside it. fast-check puts the
 * seed (and the path to the counterexample) into the error of a failing property; a failing test
 * that asserts after its property (a coverage count, say) gets the seed printed here.
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import fc from 'fast-check';
import { afterEach } from 'vitest';

const DEFAULT_SEED = 20_261_204;

function seedFromEnv(text: string | undefined): number {
  if (text === undefined || text === '') return DEFAULT_SEED;
  const seed = Number(text);
  // fast-check takes a 32-bit integer.
  if (!Number.isInteger(seed) || seed < -(2 ** 31) || seed >= 2 ** 32)
    throw new Error(`FC_SEED (${JSON.stringify(text)}) must be a whole number that fits 32 bits`);
  return seed;
}

export const FC_SEED = seedFromEnv(process.env.FC_SEED);
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: FC_SEED });

const usesFastCheck = new Map<string, boolean>();
afterEach((context) => {
  if (context.task.result?.state !== 'fail') return;
  const file = context.task.file.filepath;
  if (!usesFastCheck.has(file)) usesFastCheck.set(file, readFileSync(file, 'utf8').includes("from 'fast-check'"));
  if (!usesFastCheck.get(file)) return;
  const where = relative(process.cwd(), file);
  console.error(
    `fast-check seed ${FC_SEED}; replay: FC_SEED=${FC_SEED} npx vitest run ${where} -t ${JSON.stringify(context.task.name)}`,
  );
});
