// A plain Node script using the Dispatcher, as an app's backend would: one batch of tool_use blocks
// in, one tool_result per block (in order) out.
import { Dispatcher } from '@toolq/coordinator';

const dispatcher = new Dispatcher({ redisUrl: process.env.REDIS_URL, prefix: process.env.TOOLQ_PREFIX });
await dispatcher.start();
try {
  const { toolResults } = await dispatcher.dispatch(
    [
      { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'toolu_2', name: 'get_weather', input: { city: 'Oslo' } },
      { type: 'tool_use', id: 'toolu_3', name: 'get_weather', input: { town: 'Rome' } },
    ],
    { timeoutMs: 10_000 },
  );
  console.log(JSON.stringify(toolResults));
} finally {
  await dispatcher.close();
}
