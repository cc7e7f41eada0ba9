// Multiple-choice tasks read from local JSONL files in the field layouts of
// the Hugging Face datasets, turned into what lm-evaluation-harness scores:
// per choice a context and a continuation (docs/evaluation.md lists every
// layout's fields and prompt). One function per layout; a malformed line is
// an error "FILE:LINE: ...".
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tlc::evaluate {

struct TaskError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// A malformed NAME=FILE item or an unknown task name: a usage error.
struct TaskSpecError : TaskError {
  using TaskError::TaskError;
};

enum class Layout { HellaSwag, Piqa, Arc, OpenBookQa, BoolQ, WinoGrande };

// A task name the command accepts, and what it reads.
struct TaskKind {
  const char *name;    // "hellaswag", "arc_easy", ...
  Layout layout;
  bool accNorm;        // the harness reports acc_norm for it
  const char *fields;  // the JSON fields, for messages and docs
};
const std::vector<TaskKind> &taskKinds();
// The kind named `name`; throws TaskSpecError listing the known names.
const TaskKind &taskKind(const std::string &name);

// One scored (context, continuation) pair.
struct Request {
  std::string context, continuation;
};

// One example: a request per choice, the gold choice, and each choice's
// length in characters (code points) for acc_norm.
struct Example {
  int64_t line = 0;  // 1-based, in its file
  std::vector<Request> requests;
  std::vector<int64_t> choiceChars;
  int64_t gold = 0;
};

// One JSONL line of a layout as an example; throws TaskError "FILE:LINE: ...".
Example parseExample(Layout layout, const std::string &line, const std::string &file, int64_t lineNo);

// HellaSwag's text cleaning, as the harness's preprocess(): strip, " [title]"
// -> ". ", bracketed tags ("[header]", "[step]") removed, then each double
// space made single (one pass, left to right).
std::string hellaswagPreprocess(const std::string &text);

struct Task {
  std::string name, file;
  TaskKind kind;
  std::vector<Example> examples;
};

// The first `limit` examples (0: all) of `file` read as task `name`; blank
// lines are skipped (but counted in line numbers). Throws TaskError naming
// the file (missing, unreadable, no examples) or the line.
Task readTask(const std::string &name, const std::string &file, int64_t limit = 0);

// "NAME=FILE,NAME=FILE" items (each string one occurrence of --tasks) as
// (name, file) pairs, in order; throws TaskSpecError for an item that is not
// NAME=FILE, an unknown name or a name given twice.
std::vector<std::pair<std::string, std::string>> parseTaskList(const std::vector<std::string> &items);

}  // namespace tlc::evaluate
