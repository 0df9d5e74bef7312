/**
 * @file aiplat/aiplat.h
 * @brief The umbrella header: include this one.
 */
#ifndef AIPLAT_AIPLAT_H
#define AIPLAT_AIPLAT_H

#include "version.h"
#include "common.h"
#include "call.h"
#include "log.h"
#include "config.h"
#include "health.h"
#include "message.h"
#include "subject.h"
#include "bus.h"
#include "client.h"
#include "llm.h"
#include "embeddings.h"
#include "reranker.h"
#include "stt.h"
#include "tts.h"
#include "service.h"
#include "pipeline.h"
#include "rag.h"
#include "chat.h"
#include "voice.h"

#endif /* AIPLAT_AIPLAT_H */
