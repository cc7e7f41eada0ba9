// tlrun evaluate's device-free parts: Python's string rules, every task
// layout's prompts and choices (the expected strings written from
// lm-evaluation-harness's task definitions), errors with FILE:LINE, the
// --tasks list, the harness's request tokenization and rolling windows.
#include "runtime/data/tokenizer.h"
#include "runtime/evaluate/perplexity.h"
#include "runtime/evaluate/scorer.h"
#include "runtime/evaluate/tasks.h"
#include "runtime/evaluate/text.h"

#include "DataTestSupport.h"

#include <gtest/gtest.h>

#include <fstream>

namespace ev = tlc::evaluate;

namespace tlc::evaluate {
bool operator==(const EncodedRequest &a, const EncodedRequest &b) {
  return a.context == b.context && a.continuation == b.continuation;
}
}  // namespace tlc::evaluate

namespace {

ev::Example parse(ev::Layout layout, const std::string &line) { return ev::parseExample(layout, line, "t.jsonl", 7); }

// The message of the TaskError parsing `line` throws ("" when none).
std::string parseError(ev::Layout layout, const std::string &line) {
  try {
    parse(layout, line);
  } catch (const ev::TaskError &e) {
    return e.what();
  }
  return "";
}

TEST(EvaluateText, PythonWhitespaceAndLengths) {
  EXPECT_TRUE(ev::isPythonSpace(' ') && ev::isPythonSpace('\n') && ev::isPythonSpace(0x1F) &&
              ev::isPythonSpace(0xA0) && ev::isPythonSpace(0x3000) && ev::isPythonSpace(0x2028));
  EXPECT_FALSE(ev::isPythonSpace('x') || ev::isPythonSpace(0x200B) || ev::isPythonSpace(0));
  EXPECT_EQ(ev::strip("\xc2\xa0 x y \xe3\x80\x80\n"), "x y");
  EXPECT_EQ(ev::strip(" \t "), "");
  EXPECT_EQ(ev::trailingSpaceBytes("ab \n"), 2u);
  EXPECT_EQ(ev::trailingSpaceBytes("ab\xc2\xa0"), 2u);
  EXPECT_EQ(ev::trailingSpaceBytes("caf\xc3\xa9"), 0u);
  EXPECT_EQ(ev::codePoints("caf\xc3\xa9 \xe6\x97\xa5"), 6);
  // len(re.split(r"\s+", s)): edges count an empty word each.
  EXPECT_EQ(ev::pythonWordCount(""), 1);
  EXPECT_EQ(ev::pythonWordCount("a  b"), 2);
  EXPECT_EQ(ev::pythonWordCount(" a\xc2\xa0" "b\xe3\x80\x80 "), 4);
  EXPECT_EQ(ev::capitalize("hELLO wORLD"), "Hello world");
  EXPECT_EQ(ev::capitalize(""), "");
}

TEST(EvaluateTasks, HellaswagPreprocessMatchesTheHarness) {
  // Expected values are Python's output of the harness's preprocess().
  EXPECT_EQ(ev::hellaswagPreprocess(" A man [title] is here.  [header] Go  on "), "A man. is here.  Go on");
  EXPECT_EQ(ev::hellaswagPreprocess("keep [open\nline] and [x]y   z"), "keep [open\nline] and y  z");
  EXPECT_EQ(ev::hellaswagPreprocess("[step] a[b]c[d"), " ac[d");
}

TEST(EvaluateTasks, EveryLayoutsPromptAndChoices) {
  ev::Example h = parse(ev::Layout::HellaSwag,
                        R"({"activity_label": "Roof shingle removal", "ctx_a": "A man is on a roof.", "ctx_b": "HE starts",)"
                        R"( "endings": ["pulling up [step] roofing.", "is  ripping tiles."], "label": "1"})");
  ASSERT_EQ(h.requests.size(), 2u);
  EXPECT_EQ(h.requests[0].context, "Roof shingle removal: A man is on a roof. He starts");
  EXPECT_EQ(h.requests[0].continuation, " pulling up roofing.");
  EXPECT_EQ(h.requests[1].continuation, " is ripping tiles.");
  EXPECT_EQ(h.choiceChars, (std::vector<int64_t>{19, 17}));
  EXPECT_EQ(h.gold, 1);
  EXPECT_EQ(h.line, 7);

  ev::Example p = parse(ev::Layout::Piqa, R"({"goal": "Open a jar", "sol1": "twist", "sol2": "hit it", "label": 0})");
  EXPECT_EQ(p.requests[1].context, "Question: Open a jar\nAnswer:");
  EXPECT_EQ(p.requests[1].continuation, " hit it");
  EXPECT_EQ(p.gold, 0);

  ev::Example a = parse(ev::Layout::Arc, R"({"question": "Why?", "choices": {"text": ["a", "bb", "c"],)"
                                         R"( "label": ["1", "2", "3"]}, "answerKey": "2"})");
  EXPECT_EQ(a.requests[0].context, "Question: Why?\nAnswer:");
  EXPECT_EQ(a.requests[2].continuation, " c");
  EXPECT_EQ(a.gold, 1);
  EXPECT_EQ(a.choiceChars, (std::vector<int64_t>{1, 2, 1}));

  ev::Example o = parse(ev::Layout::OpenBookQa, R"({"question_stem": "The sun is", "choices": {"text": ["hot",)"
                                                R"( "cold"], "label": ["A", "B"]}, "answerKey": " B"})");
  EXPECT_EQ(o.requests[0].context, "The sun is");
  EXPECT_EQ(o.requests[0].continuation, " hot");
  EXPECT_EQ(o.gold, 1);

  ev::Example b = parse(ev::Layout::BoolQ, R"({"passage": "Cats purr.", "question": "do cats purr", "answer": true})");
  EXPECT_EQ(b.requests[0].context, "Cats purr.\nQuestion: do cats purr?\nAnswer:");
  EXPECT_EQ(b.requests[0].continuation, " no");
  EXPECT_EQ(b.requests[1].continuation, " yes");
  EXPECT_EQ(b.gold, 1);
  EXPECT_EQ(parse(ev::Layout::BoolQ, R"({"passage": "p", "question": "q", "label": 0})").gold, 0);  // SuperGLUE's

  ev::Example w = parse(ev::Layout::WinoGrande, R"({"sentence": "The cup fell off the table because the _ was)"
                                                R"( tilted. ", "option1": "cup", "option2": "table", "answer": "2"})");
  EXPECT_EQ(w.requests[0].context, "The cup fell off the table because the cup");
  EXPECT_EQ(w.requests[1].context, "The cup fell off the table because the table");
  EXPECT_EQ(w.requests[0].continuation, " was tilted.");
  EXPECT_EQ(w.requests[1].continuation, " was tilted.");
  EXPECT_EQ(w.gold, 1);
}

TEST(EvaluateTasks, MalformedLinesNameFileAndLine) {
  using L = ev::Layout;
  EXPECT_EQ(parseError(L::Piqa, R"({"goal": )").rfind("t.jsonl:7: not valid JSON: ", 0), 0u);
  EXPECT_EQ(parseError(L::Piqa, "3"), "t.jsonl:7: piqa: the line is a JSON number, expected an object");
  EXPECT_EQ(parseError(L::Piqa, R"({"goal": "g", "sol1": "a", "label": 0})"), "t.jsonl:7: piqa: field 'sol2' is missing");
  EXPECT_EQ(parseError(L::Piqa, R"({"goal": 1, "sol1": "a", "sol2": "b", "label": 0})"),
            "t.jsonl:7: piqa: field 'goal' is number, expected a string");
  EXPECT_EQ(parseError(L::Piqa, R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 2})"),
            "t.jsonl:7: piqa: field 'label' is 2, not a choice index 0..1");
  EXPECT_EQ(parseError(L::Piqa, R"({"goal": "g", "sol1": "", "sol2": "b", "label": 1})"),
            "t.jsonl:7: piqa: choice 0 is empty");
  EXPECT_EQ(parseError(L::HellaSwag, R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x", "y"],)"
                                     R"( "label": ""})"),
            "t.jsonl:7: hellaswag: field 'label' is \"\", not a choice index 0..1 (a test split without labels?)");
  EXPECT_EQ(parseError(L::HellaSwag, R"({"activity_label": "a", "ctx_a": "b", "ctx_b": "c", "endings": ["x"], "label": 0})"),
            "t.jsonl:7: hellaswag: needs at least 2 choices, has 1");
  EXPECT_EQ(parseError(L::Arc, R"({"question": "q", "choices": {"text": ["a", "b"], "label": ["A"]}, "answerKey": "A"})"),
            "t.jsonl:7: arc_easy: choices has 2 texts but 1 labels");
  EXPECT_EQ(parseError(L::Arc, R"({"question": "q", "choices": ["a", "b"], "answerKey": "A"})"),
            "t.jsonl:7: arc_easy: field 'choices' is array, expected {\"text\": [...], \"label\": [...]}");
  EXPECT_EQ(parseError(L::OpenBookQa, R"({"question_stem": "q", "choices": {"text": ["a", "b"], "label": ["A", "B"]},)"
                                      R"( "answerKey": "E"})"),
            "t.jsonl:7: openbookqa: answerKey 'E' is none of the choice labels (A, B)");
  EXPECT_EQ(parseError(L::BoolQ, R"({"passage": "p", "question": "q"})"), "t.jsonl:7: boolq: field 'answer' is missing");
  EXPECT_EQ(parseError(L::WinoGrande, R"({"sentence": "a b", "option1": "x", "option2": "y", "answer": "1"})"),
            "t.jsonl:7: winogrande: field 'sentence' has no '_' to fill in");
  EXPECT_EQ(parseError(L::WinoGrande, R"({"sentence": "a _ b", "option1": "x", "option2": "y", "answer": "3"})"),
            "t.jsonl:7: winogrande: field 'answer' is \"3\", expected \"1\" or \"2\"");
}

TEST(EvaluateTasks, TaskFilesAndTheTaskList) {
  std::string dir = datatest::tempDir("evaluate_tasks");
  ASSERT_EQ(std::system(("mkdir -p '" + dir + "'").c_str()), 0);
  std::string file = dir + "/piqa.jsonl";
  std::string line = R"({"goal": "g", "sol1": "a", "sol2": "b", "label": 1})";
  datatest::writeFile(file, line + "\r\n\n  \n" + line + "\n" + line + "\n" + "{broken\n");
  // Blank lines count in line numbers; --limit stops before the broken line.
  ev::Task t = ev::readTask("piqa", file, 2);
  ASSERT_EQ(t.examples.size(), 2u);
  EXPECT_EQ(t.examples[0].line, 1);
  EXPECT_EQ(t.examples[1].line, 4);
  try {
    ev::readTask("piqa", file);
    FAIL() << "a broken line read";
  } catch (const ev::TaskError &e) {
    EXPECT_EQ(std::string(e.what()).rfind(file + ":6: not valid JSON", 0), 0u) << e.what();
  }
  EXPECT_THROW(ev::readTask("piqa", dir + "/none.jsonl"), ev::TaskError);
  EXPECT_THROW(ev::readTask("piqa", dir), ev::TaskError);

  auto list = ev::parseTaskList({"piqa=a.jsonl,arc_easy=b=c.jsonl", "boolq=d"});
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[1], (std::pair<std::string, std::string>{"arc_easy", "b=c.jsonl"}));
  EXPECT_THROW(ev::parseTaskList({"piqa"}), ev::TaskSpecError);
  EXPECT_THROW(ev::parseTaskList({"piqa=a,"}), ev::TaskSpecError);
  EXPECT_THROW(ev::parseTaskList({"=a"}), ev::TaskSpecError);
  EXPECT_THROW(ev::parseTaskList({"mmlu=a"}), ev::TaskSpecError);
  EXPECT_THROW(ev::parseTaskList({"piqa=a", "piqa=b"}), ev::TaskSpecError);
}

TEST(EvaluateTasks, RequestsAreTokenizedAsTheHarnessDoes) {
  const tlc::data::Tokenizer &tok = datatest::testTokenizer();
  // The context's trailing space moves to the continuation before encoding.
  ev::EncodedRequest e = ev::encodeRequest(tok, {"The answer is ", "yes"});
  std::vector<int> context = tok.encode("The answer is"), whole = tok.encode("The answer is yes");
  std::vector<int> want = {tok.bosId()};
  want.insert(want.end(), context.begin(), context.end());
  EXPECT_EQ(e.context, want);
  EXPECT_EQ(e.continuation, std::vector<int>(whole.begin() + context.size(), whole.end()));
  EXPECT_EQ(e, ev::encodeRequest(tok, {"The answer is", " yes"}));
  // An empty context: BOS alone, the continuation encoded on its own.
  ev::EncodedRequest empty = ev::encodeRequest(tok, {"", " cats"});
  EXPECT_EQ(empty.context, std::vector<int>{tok.bosId()});
  EXPECT_EQ(empty.continuation, tok.encode(" cats"));
}

TEST(EvaluateTasks, RollingWindowsPredictEveryTokenOnce) {
  std::vector<int> tokens = {10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
  std::vector<ev::Sequence> w = ev::rollingWindows(tokens, 1, 4);
  // The harness's get_rolling_token_windows(context_len=1) + make_disjoint_window.
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(w[0].tokens, (std::vector<int>{1, 10, 11, 12, 13}));
  EXPECT_EQ(w[0].scored, 4u);
  EXPECT_EQ(w[1].tokens, (std::vector<int>{13, 14, 15, 16, 17}));
  EXPECT_EQ(w[1].scored, 4u);
  EXPECT_EQ(w[2].tokens, (std::vector<int>{15, 16, 17, 18, 19}));
  EXPECT_EQ(w[2].scored, 2u);
  std::vector<ev::Sequence> one = ev::rollingWindows({5, 6}, 1, 4);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].tokens, (std::vector<int>{1, 5, 6}));
  EXPECT_EQ(one[0].scored, 2u);
  EXPECT_TRUE(ev::rollingWindows({}, 1, 4).empty());
}

}  // namespace
