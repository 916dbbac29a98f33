// One meaning per figure: the definitions every page shows beside the live figures (the wallboard,
// the console's job monitor; the reports use the same words). GLOSSARY.md holds the same
// definitions; control::wallboard computes the figures so.
//
// Each entry: [label, definition]. "本日" is the tenant's day (from midnight in its time zone).

export const FIGURES = {
  ja: {
    waiting: ['待ち呼', '応答したお客様のうち、いまエージェントを待っている人数。'],
    longest_wait: ['最長待ち', 'いま待っているお客様のうち、最も長く待っている時間。'],
    answered: ['応答', '本日、お客様が電話に出た数 (待ち呼になった数)。'],
    connected: ['接続', '本日応答したお客様のうち、エージェントにつながった数。通話中の呼を含む。'],
    abandoned: ['破棄呼', '本日応答したお客様のうち、エージェントにつながる前に切れた数。'],
    answer_rate: ['応答率', '直近24時間の 接続 ÷ 応答。'],
    abandon_24h: ['破棄率 (24時間)', '直近24時間の 破棄呼 ÷ 応答。キャンペーンの破棄率目標と比べる。'],
    abandon_30d: ['破棄率 (30日)', '直近30日の 破棄呼 ÷ 応答。キャンペーンの破棄率目標と比べる。'],
    dials_in_flight: ['発信中', 'いまお客様へ発信中・呼出中の呼の数 (まだ応答していないもの)。'],
    dial_level: ['発信レベル', '発信中 ÷ 稼働エージェント (ログイン中で停止中でないエージェント)。キャンペーン、発信グループ、全体とも同じ計算。'],
    predicted_abandon: ['予測破棄率', '発信制御が予測する、これから応答するお客様のうち破棄呼になる割合。'],
    remaining_leads: ['残りリード', '稼働中のコールジョブが今回の稼働でまだ発信するリードの数 (抽出条件に合い、完了しておらず、再コール予約がなく、稼働開始後に未発信)。コールジョブの残件数と同じ。'],
    calls_today: ['本日の通話', '本日終了した会話 (エージェントにつながった通話) の数。通話中の呼は含まない。エージェントごとの「通話」も同じ。'],
    talking_calls: ['通話中の呼', 'いまエージェントと話しているお客様の数。'],
    agents_online: ['ログイン中', 'オフライン以外の状態のエージェントの数。'],
    agents_total: ['エージェント', '表示しているエージェントの数 (オフラインを含む)。'],
    target_count: ['対象件数', 'コールジョブの顧客リストのうち、リスト抽出条件に合うリードの数 (発信済みを含む)。'],
  },
  en: {
    waiting: ['Waiting calls', 'Customers who answered and are waiting for an agent now.'],
    longest_wait: ['Longest wait', 'How long the customer waiting longest has waited.'],
    answered: ['Answered', 'Customers who answered today (who became waiting calls).'],
    connected: ['Connected', 'Customers answered today who reached an agent, calls still talking included.'],
    abandoned: ['Abandoned', 'Customers answered today who hung up or were released before reaching an agent.'],
    answer_rate: ['Answer rate', 'Connected ÷ answered over the last 24 hours.'],
    abandon_24h: ['Abandon rate (24 h)', 'Abandoned ÷ answered over the last 24 hours, against the campaign\'s abandon target.'],
    abandon_30d: ['Abandon rate (30 days)', 'Abandoned ÷ answered over the last 30 days, against the campaign\'s abandon target.'],
    dials_in_flight: ['Dials in flight', 'Customer calls being dialled or ringing now (not answered yet).'],
    dial_level: ['Dial level', 'Dials in flight ÷ active agents (logged in and not paused), computed the same way for a campaign, a group and the whole floor.'],
    predicted_abandon: ['Predicted abandon', 'The share of the coming answers the pacer expects to abandon.'],
    remaining_leads: ['Remaining leads', 'Leads the running call jobs will still dial in this run (matching their filters, not completed, no recall booked, not dialled since the job started); the call job\'s remaining count.'],
    calls_today: ['Calls today', 'Conversations (calls connected to an agent) that ended today; calls still talking are not counted. The same figure as an agent\'s "calls".'],
    talking_calls: ['Calls talking', 'Customers talking to an agent now.'],
    agents_online: ['Logged in', 'Agents in any state but offline.'],
    agents_total: ['Agents', 'Agents shown, offline included.'],
    target_count: ['Target count', 'Leads of the call job\'s customer lists that match its filters, dialled or not.'],
  },
};

/** The agents' state colours, the same on every page (a pause shows its reason's own colour). */
export const STATE_COLORS = {
  ready: '#2e9d4f', ringing: '#d99a16', talking: '#2f6fd6', hold: '#7b5cd6', wrap_up: '#13989a',
  paused: '#c0622f', unknown: '#8a1c1c', offline: '#8d949b',
};

/** [label, definition] of a figure in a language (Japanese when the language has none). */
export function figure(lang, key) {
  return (FIGURES[lang] && FIGURES[lang][key]) || FIGURES.ja[key] || [key, ''];
}
