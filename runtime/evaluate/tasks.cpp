#include "runtime/evaluate/tasks.h"

#include <set>

#include <nlohmann/json.hpp>

#include "runtime/evaluate/text.h"

namespace tlc::evaluate {
namespace {

using nlohmann::json;

// Where an example comes from, for its errors: "FILE:LINE: TASK: ...".
struct Where {
  const std::string &file;
  int64_t line;
  const char *layout;
  TaskError error(const std::string &what) const {
    return TaskError(file + ":" + std::to_string(line) + ": " + layout + ": " + what);
  }
};

const json &field(const json &j, const char *name, const Where &w) {
  auto it = j.find(name);
  if (it == j.end()) throw w.error(std::string("field '") + name + "' is missing");
  return *it;
}

std::string text(const json &j, const char *name, const Where &w) {
  const json &v = field(j, name, w);
  if (!v.is_string()) throw w.error(std::string("field '") + name + "' is " + v.type_name() + ", expected a string");
  return v.get<std::string>();
}

std::vector<std::string> texts(const json &j, const char *name, const Where &w) {
  const json &v = field(j, name, w);
  if (!v.is_array()) throw w.error(std::string("field '") + name + "' is " + v.type_name() + ", expected a list of strings");
  std::vector<std::string> out;
  for (const json &x : v) {
    if (!x.is_string()) throw w.error(std::string("field '") + name + "' holds a " + x.type_name() + ", expected strings");
    out.push_back(x.get<std::string>());
  }
  return out;
}

// A choice index given as an integer or a string of digits ("2"), in [0, n).
int64_t choiceIndex(const json &j, const char *name, size_t n, const Where &w) {
  const json &v = field(j, name, w);
  int64_t k = -1;
  if (v.is_number_integer()) {
    k = v.get<int64_t>();
  } else if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (!s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos) k = std::stoll(s);
  }
  if (k < 0 || k >= static_cast<int64_t>(n))
    throw w.error(std::string("field '") + name + "' is " + v.dump() + ", not a choice index 0.." + std::to_string(n - 1) +
                  (v == "" ? " (a test split without labels?)" : ""));
  return k;
}

// The choices " " + text after one shared context, as most layouts score them.
Example choicesAfter(const std::string &context, const std::vector<std::string> &choices, int64_t gold,
                     const Where &w) {
  if (choices.size() < 2) throw w.error("needs at least 2 choices, has " + std::to_string(choices.size()));
  Example e;
  for (size_t i = 0; i < choices.size(); ++i) {
    if (choices[i].empty()) throw w.error("choice " + std::to_string(i) + " is empty");
    e.requests.push_back({context, " " + choices[i]});
    e.choiceChars.push_back(codePoints(choices[i]));
  }
  e.gold = gold;
  return e;
}

// ARC's and OpenBookQA's {"text": [...], "label": [...]} and the answer key
// among the labels.
Example labelledChoices(const json &j, const std::string &context, const Where &w) {
  const json &c = field(j, "choices", w);
  if (!c.is_object()) throw w.error(std::string("field 'choices' is ") + c.type_name() + ", expected {\"text\": [...], \"label\": [...]}");
  std::vector<std::string> choices = texts(c, "text", w), labels = texts(c, "label", w);
  if (labels.size() != choices.size())
    throw w.error("choices has " + std::to_string(choices.size()) + " texts but " + std::to_string(labels.size()) +
                  " labels");
  std::string key = strip(text(j, "answerKey", w));
  size_t gold = 0;
  while (gold < labels.size() && labels[gold] != key) ++gold;
  if (gold == labels.size()) {
    std::string known;
    for (const std::string &l : labels) known += (known.empty() ? "" : ", ") + l;
    throw w.error("answerKey '" + key + "' is none of the choice labels (" + known + ")");
  }
  return choicesAfter(context, choices, static_cast<int64_t>(gold), w);
}

Example hellaswag(const json &j, const Where &w) {
  std::string ctx = text(j, "ctx_a", w) + " " + capitalize(text(j, "ctx_b", w));
  std::string query = hellaswagPreprocess(text(j, "activity_label", w) + ": " + ctx);
  std::vector<std::string> endings = texts(j, "endings", w);
  for (std::string &e : endings) e = hellaswagPreprocess(e);
  return choicesAfter(query, endings, choiceIndex(j, "label", endings.size(), w), w);
}

Example piqa(const json &j, const Where &w) {
  std::vector<std::string> sols = {text(j, "sol1", w), text(j, "sol2", w)};
  return choicesAfter("Question: " + text(j, "goal", w) + "\nAnswer:", sols, choiceIndex(j, "label", 2, w), w);
}

Example boolq(const json &j, const Where &w) {
  std::string context = text(j, "passage", w) + "\nQuestion: " + text(j, "question", w) + "?\nAnswer:";
  int64_t gold;
  if (j.contains("answer")) {  // google/boolq: a bool
    const json &a = j["answer"];
    if (!a.is_boolean()) throw w.error(std::string("field 'answer' is ") + a.type_name() + ", expected true or false");
    gold = a.get<bool>() ? 1 : 0;
  } else if (j.contains("label")) {  // super_glue's boolq: 0 (no) or 1 (yes)
    gold = choiceIndex(j, "label", 2, w);
  } else {
    throw w.error("field 'answer' is missing");
  }
  return choicesAfter(context, {"no", "yes"}, gold, w);
}

// Partial scoring: the sentence up to "_" with each option is a context,
// the rest of the sentence the one continuation they share.
Example winogrande(const json &j, const Where &w) {
  std::string sentence = text(j, "sentence", w);
  size_t blank = sentence.find('_');
  if (blank == std::string::npos) throw w.error("field 'sentence' has no '_' to fill in");
  std::string rest = strip(sentence.substr(blank + 1));
  if (rest.empty()) throw w.error("field 'sentence' has nothing after its '_' to score");
  const json &a = field(j, "answer", w);
  int64_t gold = a == "1" || a == 1 ? 0 : a == "2" || a == 2 ? 1 : -1;
  if (gold < 0) throw w.error("field 'answer' is " + a.dump() + ", expected \"1\" or \"2\"" +
                              (a == "" ? " (a test split without labels?)" : ""));
  Example e;
  for (const char *option : {"option1", "option2"}) {
    e.requests.push_back({sentence.substr(0, blank) + text(j, option, w), " " + rest});
    e.choiceChars.push_back(codePoints(rest));
  }
  e.gold = gold;
  return e;
}

// A JSON library message without its "[json.exception.parse_error.101] " tag.
std::string jsonMessage(const std::exception &e) {
  std::string s = e.what();
  size_t tag = s.find("] ");
  return s.rfind("[json.exception", 0) == 0 && tag != std::string::npos ? s.substr(tag + 2) : s;
}

}  // namespace

const std::vector<TaskKind> &taskKinds() {
  static const std::vector<TaskKind> kinds = {
      {"hellaswag", Layout::HellaSwag, true, "ctx_a, ctx_b, activity_label, endings, label"},
      {"piqa", Layout::Piqa, true, "goal, sol1, sol2, label"},
      {"arc_easy", Layout::Arc, true, "question, choices {text, label}, answerKey"},
      {"arc_challenge", Layout::Arc, true, "question, choices {text, label}, answerKey"},
      {"winogrande", Layout::WinoGrande, false, "sentence, option1, option2, answer"},
      {"boolq", Layout::BoolQ, false, "passage, question, answer"},
      {"openbookqa", Layout::OpenBookQa, true, "question_stem, choices {text, label}, answerKey"},
  };
  return kinds;
}

const TaskKind &taskKind(const std::string &name) {
  std::string known;
  for (const TaskKind &k : taskKinds()) {
    if (name == k.name) return k;
    known += (known.empty() ? "" : ", ") + std::string(k.name);
  }
  throw TaskSpecError("unknown task '" + name + "' (known: " + known + ")");
}

std::string hellaswagPreprocess(const std::string &in) {
  std::string s = strip(in), titled, untagged, out;
  for (size_t i = 0; i < s.size();) {  // " [title]" -> ". "
    if (s.compare(i, 8, " [title]") == 0) {
      titled += ". ";
      i += 8;
    } else {
      titled += s[i++];
    }
  }
  for (size_t i = 0; i < titled.size();) {  // re.sub("\\[.*?\\]", "", s): '.' stops at a newline
    if (titled[i] == '[') {
      size_t end = titled.find_first_of("]\n", i + 1);
      if (end != std::string::npos && titled[end] == ']') {
        i = end + 1;
        continue;
      }
    }
    untagged += titled[i++];
  }
  for (size_t i = 0; i < untagged.size();) {  // s.replace("  ", " ")
    bool twice = untagged.compare(i, 2, "  ") == 0;
    out += untagged[i];
    i += twice ? 2 : 1;
  }
  return out;
}

Example parseExample(Layout layout, const std::string &line, const std::string &file, int64_t lineNo) {
  const char *name = "task";
  for (const TaskKind &k : taskKinds())
    if (k.layout == layout) {
      name = k.name;
      break;
    }
  Where w{file, lineNo, name};
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception &e) {
    throw TaskError(file + ":" + std::to_string(lineNo) + ": not valid JSON: " + jsonMessage(e));
  }
  if (!j.is_object()) throw w.error(std::string("the line is a JSON ") + j.type_name() + ", expected an object");
  Example e;
  switch (layout) {
    case Layout::HellaSwag: e = hellaswag(j, w); break;
    case Layout::Piqa: e = piqa(j, w); break;
    case Layout::Arc: e = labelledChoices(j, "Question: " + text(j, "question", w) + "\nAnswer:", w); break;
    case Layout::OpenBookQa: e = labelledChoices(j, text(j, "question_stem", w), w); break;
    case Layout::BoolQ: e = boolq(j, w); break;
    case Layout::WinoGrande: e = winogrande(j, w); break;
  }
  e.line = lineNo;
  return e;
}

Task readTask(const std::string &name, const std::string &file, int64_t limit) {
  Task t{name, file, taskKind(name), {}};
  std::string text = readWholeFile(file, name + " task file");
  int64_t lineNo = 0;
  for (size_t start = 0; start < text.size() && (limit <= 0 || static_cast<int64_t>(t.examples.size()) < limit);) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++lineNo;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    t.examples.push_back(parseExample(t.kind.layout, line, file, lineNo));
  }
  if (t.examples.empty())
    throw TaskError(file + ": no examples (expected one JSON object per line with " + t.kind.fields + ")");
  return t;
}

std::vector<std::pair<std::string, std::string>> parseTaskList(const std::vector<std::string> &items) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> seen;
  for (const std::string &item : items) {
    size_t start = 0;
    while (start <= item.size()) {
      size_t end = item.find(',', start);
      if (end == std::string::npos) end = item.size();
      std::string one = item.substr(start, end - start);
      size_t eq = one.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == one.size())
        throw TaskSpecError("--tasks: '" + one + "' is not NAME=FILE.jsonl");
      std::string name = one.substr(0, eq);
      taskKind(name);
      if (!seen.insert(name).second) throw TaskSpecError("--tasks: task '" + name + "' given twice");
      out.push_back({name, one.substr(eq + 1)});
      start = end + 1;
    }
  }
  return out;
}

}  // namespace tlc::evaluate
