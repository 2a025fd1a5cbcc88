#pragma once
// The sampler is part of the public API (std only); internal code includes it here.
#include "tandem/sampler.h"
