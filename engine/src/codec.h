// The stored encoding of records. Private to engine/. Also fuzzed
// (tests/fuzz/records_fuzz.cpp): decoding never trusts the bytes.
//
// "assets" column family: key = asset id, value = EncodeAsset (no vector).
// "vectors" column family: key = asset id, value = dimension little-endian floats.
// "events" column family: value = EncodeEvent, or EncodeShownRun for a
// recommendation's `shown` events in one record (keys in feedback.h).
// "leads" column family: key = lead id, value = EncodeLeadState.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "playbook/engine/status.h"
#include "playbook/engine/types.h"
#include "tally.h"

namespace playbook {

// The formats the encoders write (each decoder also reads the older ones). The
// records fuzzer checks that a record of the current format re-encodes byte for
// byte, so it reads them from here rather than repeating the numbers.
inline constexpr uint8_t kAssetFormat = 2;
inline constexpr uint8_t kEventFormat = 5;
inline constexpr uint8_t kLeadFormat = 4;
// The first byte of a run of `shown` events (EncodeShownRun): above every event
// format, which counts up from 1.
inline constexpr uint8_t kShownRunFormat = 0x40;

// Format byte first, so the encoding can evolve.
std::string EncodeAsset(const Asset& asset);
// Corruption when the bytes are not an encoded asset.
Status DecodeAsset(std::string_view bytes, Asset* asset);

std::string EncodeVector(const float* v, uint32_t dim);
// Corruption when the size is not dim floats.
Status DecodeVector(std::string_view bytes, uint32_t dim, std::vector<float>* out);

// False when the bytes are not a well-formed record. A lead record of the
// first format (stage, since, topic) decodes with complete = false (rebuild
// it from the log); a damaged one keeps what could be read, also incomplete.
std::string EncodeEvent(const Event& e);
// The same into *out (replacing its bytes, reusing its memory).
void EncodeEventTo(const Event& e, std::string* out);
bool DecodeEvent(std::string_view in, Event* e);
// A recommendation's `shown` events, consecutive in the log, as one "events"
// record (a run): what they share once (lead, recommendation, stage, rep,
// topic, arm, ts, the context's terms), then per event in rank order its
// asset, its id unless it is "<recommendation id>:<asset>", and whether it
// carries the terms or marks them the same as the first's. ShownRunFits says
// whether the events can be one run (at least two; every field of each event
// is kept), EncodeShownRunTo writes it into *out (replacing its bytes).
bool ShownRunFits(const Event* const* events, size_t n);
void EncodeShownRunTo(const Event* const* events, size_t n, std::string* out);
// Any "events" record, one event or a run, appended to *out in log order (a
// run's i-th event has the record key's sequence number + i). Corruption
// saying what is wrong when the bytes are not a well-formed record (*out is
// then as it was).
Status DecodeEventRecord(std::string_view in, std::vector<Event>* out);
std::string EncodeLeadState(const LeadState& st);
void EncodeLeadStateTo(const LeadState& st, std::string* out);  // into *out, reusing its memory
bool DecodeLeadState(std::string_view in, LeadState* st);

}  // namespace playbook
