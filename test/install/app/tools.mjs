// The consumer's own tool module: plain ESM, `defineTool` from @toolq/shared, `z` from its own zod.
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

export const getWeather = defineTool({
  name: 'get_weather',
  description: 'Current weather for a city. Can be called in parallel.',
  input: z.object({ city: z.string() }),
  run: async ({ city }) => ({ city, celsius: 10 + city.length }),
});

export default [getWeather];
