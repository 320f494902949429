#!/usr/bin/env node
/**
 * `pnpm demo [competitors|city|stocks|order|payment|files] [--json]`: the seed's scenarios on toolq, offline by
 * default. The only file of the demo that touches `process`: arguments, output, signals, exit codes.
 */
import { ToolqError } from '@toolq/shared';
import { Command } from 'commander';
import { formatEvent, formatSummary } from './format.ts';
import { runDemo } from './run-demo.ts';
import { isScenarioName, SCENARIO_NAMES, SCENARIOS } from './scenarios.ts';

const program = new Command('pnpm demo')
  .description('Run a seed scenario as an agent whose parallel tool calls execute on toolq workers.')
  .argument('[scenario]', `one of ${SCENARIO_NAMES.join(', ')}`, 'competitors')
  .option('--json', 'print one JSON document instead of live progress')
  .option('--no-stream', 'use JSON responses (no early dispatch)')
  .addHelpText(
    'after',
    [
      '',
      'Scenarios:',
      ...SCENARIO_NAMES.map((n) => `  ${n.padEnd(12)} ${SCENARIOS[n].title}`),
      '',
      'Without REDIS_URL a private redis-server is started on a free port; two worker processes serve',
      'the demo tools; without ANTHROPIC_API_KEY the model is an offline scripted one.',
      'Environment: REDIS_URL, TOOLQ_PREFIX, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, TOOLQ_MODEL.',
      'Ctrl-C stops the run and everything it started; a second Ctrl-C exits at once.',
    ].join('\n'),
  );

async function main(): Promise<number> {
  program.parse();
  const [scenario = 'competitors'] = program.args;
  const flags = program.opts<{ json?: boolean; stream: boolean }>();
  if (!isScenarioName(scenario)) {
    process.stderr.write(
      `demo: unknown scenario "${scenario}"; choose one of ${SCENARIO_NAMES.join(', ')}\n`,
    );
    return 2;
  }
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`\ndemo: ${signal}: stopping (again to exit at once)\n`);
      controller.abort(signal);
    } else {
      // Workers and redis-server share our process group, so they received the signal too.
      process.exit(130);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const say = (line: string) => {
    if (!flags.json) process.stdout.write(`${line}\n`);
  };
  say(`toolq demo: ${SCENARIOS[scenario].title}`);
  say(`Prompt: ${SCENARIOS[scenario].prompt}\n`);
  const report = await runDemo({
    scenario,
    stream: flags.stream,
    signal: controller.signal,
    onSetup: (line) => say(`setup: ${line}`),
    onApproval: (line) => say(`          ${line}`),
    onEvent: (event) => {
      const line = formatEvent(event);
      if (line) say(line);
    },
  });
  if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else say(`\n${formatSummary(report)}`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    const cancelled = err instanceof ToolqError && err.code === 'CANCELLED';
    const message =
      err instanceof ToolqError
        ? err.message
        : err instanceof Error
          ? (err.stack ?? err.message)
          : String(err);
    process.stderr.write(`demo: ${message}\n`);
    process.exit(cancelled ? 130 : 1);
  },
);
