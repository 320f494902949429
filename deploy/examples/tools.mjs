// A team's own tool module, baked into a worker image by Dockerfile.tools. Plain JavaScript: the
// image runs node without a TypeScript loader. @toolq/shared and zod resolve from the worker's own
// node_modules, because Dockerfile.tools copies this file under /app/worker/.
import { defineTool } from '@toolq/shared';
import { z } from 'zod';

const getWeather = defineTool({
  name: 'get_weather',
  description: 'Current weather for a city. Can be called in parallel.',
  input: z.object({ city: z.string() }),
  run: async ({ city }) => ({ city, celsius: 10 + city.length }),
});

export default [getWeather];
