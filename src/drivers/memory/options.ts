// memory's pipeline options: prefetch and priority, nothing else.

import type { PipelineOptionsBase } from '../../config/types.js';

export type MemoryPipelineOptions = PipelineOptionsBase;
