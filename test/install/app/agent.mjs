// The agent loop from a plain Node script, offline: @toolq/scripted-model plays the Messages API.
import { Dispatcher, runAgent } from '@toolq/coordinator';
import { startScriptedModel, toolTurnsScript } from '@toolq/scripted-model';

const model = await startScriptedModel(
  toolTurnsScript([
    {
      calls: [
        { name: 'get_weather', input: { city: 'Lima' } },
        { name: 'get_weather', input: { city: 'Kyiv' } },
      ],
    },
  ]),
);
const dispatcher = new Dispatcher({ redisUrl: process.env.REDIS_URL, prefix: process.env.TOOLQ_PREFIX });
await dispatcher.start();
try {
  const result = await runAgent({
    dispatcher,
    baseURL: model.url,
    apiKey: 'offline',
    prompt: 'Weather in Lima and Kyiv?',
    tools: ['get_weather'],
  });
  console.log(JSON.stringify({ status: result.status, text: result.text, calls: result.calls.length }));
} finally {
  await dispatcher.close();
  await model.close();
}
